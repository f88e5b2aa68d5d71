// libFuzzer: parse_safetensors on arbitrary bytes must succeed or throw
// huginn::Error (naming the source), never crash, read out of bounds or hit
// undefined behaviour. On success every view must lie inside the input, match
// shape x dtype, and no two non-empty views may overlap.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "huginn/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy so that reads past `size` hit ASan's redzone, not the fuzzer's buffer slack.
  std::vector<std::byte> buf(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  const std::byte* begin = buf.data();
  const std::byte* end = buf.data() + buf.size();
  try {
    auto h = huginn::parse_safetensors(std::span<const std::byte>(buf.data(), buf.size()), "fuzz.safetensors");
    std::vector<std::pair<const std::byte*, const std::byte*>> ranges;
    for (const auto& [name, t] : h.tensors) {
      if (t.nbytes == 0) continue;
      if (t.data < begin || t.data + t.nbytes > end || t.data + t.nbytes < t.data) std::abort();
      volatile std::byte first = t.data[0], last = t.data[t.nbytes - 1];
      (void)first;
      (void)last;
      // Size must equal numel x element size for the dtypes the engine knows.
      if (t.name == name) {
        size_t es = t.dtype == huginn::DType::F32 ? 4 : 2;
        if (static_cast<size_t>(t.numel()) * es != t.nbytes) std::abort();
      }
      ranges.push_back({t.data, t.data + t.nbytes});
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second) std::abort();
  } catch (const huginn::Error& e) {
    if (std::string(e.what()).find("fuzz.safetensors") == std::string::npos) std::abort();
  }
  return 0;
}
