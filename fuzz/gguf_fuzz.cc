// libFuzzer: the GGUF parser on arbitrary bytes must throw huginn::Error or
// succeed, never crash or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <span>

#include "huginn/error.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto g = huginn::parse_gguf(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz.gguf");
    for (const auto& [name, t] : g.tensors) {
      volatile std::byte b{};
      if (t.nbytes) b = t.data[t.nbytes - 1];  // the view must be inside the input
      (void)b;
    }
  } catch (const huginn::Error&) {
  }
  return 0;
}
