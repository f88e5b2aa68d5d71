// safetensors: 8-byte little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}),
// then the data section; offsets are relative to the data section.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "huginn/tensor.h"
#include "io/mapped_file.h"

namespace huginn {

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  // name -> view; `data` points into the buffer that was parsed.
  std::map<std::string, TensorView> tensors;
};

// Parses and validates a complete safetensors image held in memory. Every
// problem (truncation, header past the end, bad JSON, unknown dtype, offsets
// out of range or overlapping, size not matching shape x dtype) throws
// huginn::Error naming `source` and, where it applies, the tensor.
SafetensorsHeader parse_safetensors(std::span<const std::byte> file, const std::string& source);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path, const MappedFileOptions& opts = {});
  const SafetensorsHeader& header() const { return header_; }
  const MappedFile& file() const { return *file_; }

 private:
  std::unique_ptr<MappedFile> file_;
  SafetensorsHeader header_;
};

// A tensor to write: `data` holds exactly the bytes of shape x dtype, or, when
// `data` is null, `generate` fills a buffer of nbytes (so huge files can be
// written one tensor at a time).
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
  std::function<void(std::byte*)> generate = nullptr;
};

// Writes tensors in the given order (callers sort by name for the HF layout).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace huginn
