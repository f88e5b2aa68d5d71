// libFuzzer: ModelConfig::parse on arbitrary text and CacheStrategy::parse on
// arbitrary strings must succeed or throw huginn::Error naming the source /
// the string, never crash or hit undefined behaviour. An accepted config must
// satisfy the invariants the engine relies on and survive a to_json round
// trip; an accepted strategy must round-trip through to_string().
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "huginn/config.h"
#include "huginn/error.h"
#include "huginn/kv_cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    huginn::ModelConfig c = huginn::ModelConfig::parse(text, "fuzz/config.json");
    if (c.n_embd <= 0 || c.n_heads <= 0 || c.n_embd % c.n_heads != 0 || c.head_dim() % 2 != 0 || c.bias ||
        c.injection_type != "linear" || c.vocab_size <= 0 || c.intermediate_size <= 0 || c.block_size <= 0 ||
        !(c.norm_eps > 0))
      std::abort();
    huginn::ModelConfig again = huginn::ModelConfig::parse(c.to_json(), "round trip");
    if (again.n_embd != c.n_embd || again.n_heads != c.n_heads || again.vocab_size != c.vocab_size ||
        again.mean_recurrence != c.mean_recurrence)
      std::abort();
  } catch (const huginn::Error& e) {
    if (std::string_view(e.what()).find("fuzz/config.json") == std::string_view::npos) std::abort();
  }
  // The same bytes as a cache strategy string (short ones are the interesting ones).
  const std::string s = text.substr(0, 64);
  try {
    huginn::CacheStrategy st = huginn::CacheStrategy::parse(s);
    huginn::CacheStrategy back = huginn::CacheStrategy::parse(st.to_string());
    if (back.lookup != st.lookup || back.compress != st.compress || back.compress_n != st.compress_n) std::abort();
    // Step folding must stay in range for any accepted strategy.
    huginn::ModelConfig small;
    small.n_embd = 8;
    small.n_heads = 2;
    huginn::CacheOptions o;
    o.strategy = st;
    huginn::KVCache cache(small, o);
    for (int k = -2; k < 300; ++k) {
      int m = cache.map_step(k);
      if (m > k || (k >= 2 && m < 2)) std::abort();
    }
  } catch (const huginn::Error& e) {
    // what() is a C string: the message shows the string up to its first NUL.
    const std::string shown = "'" + s.substr(0, s.find('\0'));
    if (std::string_view(e.what()).find(shown) == std::string_view::npos) std::abort();
  }
  return 0;
}
