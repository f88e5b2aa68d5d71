// Read-only memory mapping of a whole file. Loading a model maps its weight
// files instead of reading them, so load time is bounded by page faults, not
// by parsing or copying.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace huginn {

class MappedFile {
 public:
  // Throws huginn::Error naming the path when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Hints the kernel to read the whole file ahead (for warm-up).
  void prefetch() const;

 private:
  std::string path_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace huginn
