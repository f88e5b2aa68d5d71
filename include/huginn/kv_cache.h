// The KV cache of a recurrent-depth model (spec: HUGINN.md section 4).
//
// Every attention layer *application* has its own slot, indexed by a step
// index: prelude layers 0..P-1, core layer j of recurrent iteration i at
// P + C*i + j, coda layers -1, -2, ... A token that exited early (adaptive
// compute) lacks the later slots; the lookup strategy decides what later
// tokens see instead. Compression folds core slots onto fewer ones.
//
// Storage: per slot, fixed-size pages of K|V rows, so appending a token never
// copies the past; a preallocated cache reserves all pages up front.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "huginn/config.h"

namespace huginn {

struct CacheStrategy {
  enum class Lookup { Full, LatestM4, AvailableM4, AlwaysLastM4, Skip, Randomized };
  enum class Compress { None, Sliding, Ratio, Anchor };  // compress-sN, compress-rN, compress-anchor

  Lookup lookup = Lookup::Full;
  Compress compress = Compress::None;
  int compress_n = 0;

  // Accepts the reference's strings: "full", "latest-m4", "available-m4",
  // "always-last-m4", "skip", "randomized", "compress-s4", "compress-r2",
  // "compress-anchor", and lookup-compression combinations such as
  // "latest-m4-compress-s16". Throws huginn::Error for anything else.
  static CacheStrategy parse(std::string_view s);
  std::string to_string() const;
};

struct CacheOptions {
  CacheStrategy strategy;
  // Preallocate storage for this many tokens (0: grow page by page).
  int64_t max_tokens = 0;
  // With max_tokens: the most recurrent steps any call will run.
  int64_t max_steps = 0;
  uint64_t seed = 0;  // for the "randomized" lookup
};

class KVCache {
 public:
  explicit KVCache(const ModelConfig& config, CacheOptions opts = {});
  ~KVCache();
  KVCache(KVCache&&) noexcept;
  KVCache& operator=(KVCache&&) noexcept;

  const CacheStrategy& strategy() const { return opts_.strategy; }
  // Tokens seen so far (the position of the next token).
  int64_t length() const { return length_; }
  // Bytes of K/V storage currently held (allocated pages).
  size_t bytes() const;
  // Bytes of K/V entries actually present (what a compact cache would need).
  size_t bytes_used() const;
  // Forgets the last k tokens (speculative decoding rolls back this way).
  void drop_last(int64_t k);
  void clear();

  // ---- used by the engine ----
  // Reserves positions [length, length + n) for a new call; returns the first.
  int64_t append_tokens(int64_t n);
  // Slot that a step index is stored in after compression.
  int map_step(int step_idx) const;
  // Writes K and V rows (each `row_stride` apart, E floats) for positions
  // [pos0, pos0 + n) into the slot of `step_idx`.
  void write(int step_idx, int64_t pos0, int64_t n, const float* k, const float* v, int64_t row_stride);
  // The K and V rows a layer application at `step_idx` attends to, for all
  // positions up to length(), chosen by the lookup strategy. Returns the count.
  int64_t gather(int step_idx, std::vector<const float*>& k, std::vector<const float*>& v);

 private:
  struct Slot;
  Slot& slot(int mapped, bool create);
  const Slot* find_slot(int mapped) const;
  bool has(int mapped, int64_t pos) const;
  const float* row(int mapped, int64_t pos) const;
  int core_layer(int mapped) const;  // (mapped - P) mod C

  ModelConfig config_;
  CacheOptions opts_;
  int64_t E_ = 0, page_tokens_ = 0;
  int64_t length_ = 0;
  int P_ = 2, C_ = 4, coda_ = 2;
  std::vector<std::unique_ptr<Slot>> slots_;  // index: mapped + coda_
  std::mt19937_64 rng_;
};

}  // namespace huginn
