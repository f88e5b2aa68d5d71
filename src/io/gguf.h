// GGUF (version 3), the llama.cpp ecosystem's single-file model format, used
// here for quantized Huginn models (architecture "huginn"; keys in
// docs/GGUF.md). Layout: magic "GGUF", version, tensor count, metadata count,
// metadata key/values, tensor infos (name, dims with the fastest-varying
// first, ggml type, offset), padding to general.alignment, tensor data.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "huginn/tensor.h"
#include "io/mapped_file.h"

namespace huginn {

// A metadata value: integers are widened, arrays hold scalars or strings.
// Float arrays are kept as doubles (not cast to integers: out-of-range values
// would be undefined and in-range ones silently truncated).
using GgufValue = std::variant<int64_t, uint64_t, double, bool, std::string, std::vector<int64_t>, std::vector<std::string>,
                               std::vector<double>>;

struct GgufFile {
  uint32_t version = 3;
  std::map<std::string, GgufValue> metadata;
  std::map<std::string, TensorView> tensors;  // HF names; shape as [rows, cols]
};

// ggml type ids of the dtypes the engine reads.
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
uint32_t ggml_type_of(DType t);

// Parses a whole GGUF image held in memory; every malformed field throws
// huginn::Error naming `source`, and the tensor where it applies.
GgufFile parse_gguf(std::span<const std::byte> file, const std::string& source);

class GgufReader {
 public:
  explicit GgufReader(const std::string& path, const MappedFileOptions& opts = {});
  const GgufFile& file() const { return gguf_; }
  const MappedFile& mapped() const { return *file_; }

 private:
  std::unique_ptr<MappedFile> file_;
  GgufFile gguf_;
};

// Tensors are produced one at a time by `fill` (nbytes of output), so a
// file larger than memory can be written.
struct GgufTensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // [rows, cols] or [n]
  size_t nbytes = 0;
  std::function<void(std::byte*)> fill;
};

void write_gguf(const std::string& path, const std::map<std::string, GgufValue>& metadata,
                const std::vector<GgufTensorToWrite>& tensors, uint32_t alignment = 32);

}  // namespace huginn
