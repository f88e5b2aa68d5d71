// Read-only memory mapping of a whole file. Loading a model maps its weight
// files instead of reading them, so load time is bounded by page faults, not
// by parsing or copying.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace huginn {

struct MappedFileOptions {
  // Instead of mapping the page cache (4 KiB pages), read the file into
  // anonymous memory advised MADV_HUGEPAGE (2 MiB pages where the kernel has
  // them): fewer TLB misses when decode streams every weight once per token.
  // Costs a copy at load (about 1-2 s per GB from the page cache) and private
  // memory instead of shared page cache. Measured in docs/PERFORMANCE.md.
  bool copy_to_hugepages = false;
};

class MappedFile {
 public:
  // Throws huginn::Error naming the path when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path, const MappedFileOptions& opts = {});
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Hints the kernel to read the whole file ahead (for warm-up).
  void prefetch() const;
  // True when the bytes were copied into (huge-page advised) anonymous memory.
  bool copied() const { return copied_; }
  // Seconds spent copying (0 when mapped).
  double copy_seconds() const { return copy_seconds_; }

 private:
  std::string path_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_size_ = 0;
  bool copied_ = false;
  double copy_seconds_ = 0;
};

}  // namespace huginn
