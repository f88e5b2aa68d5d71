#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "huginn/error.h"

namespace huginn {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

MappedFile::MappedFile(const std::string& path, const MappedFileOptions& opts) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error("cannot stat " + path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + " is not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0 && opts.copy_to_hugepages) {
    const auto t0 = std::chrono::steady_clock::now();
    mapped_size_ = (size_ + kHugePage - 1) / kHugePage * kHugePage;
    // Over-allocate by one huge page so the start can be 2 MiB aligned.
    const size_t len = mapped_size_ + kHugePage;
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error("cannot allocate " + std::to_string(size_) + " bytes for " + path + ": " + std::strerror(e));
    }
    auto* base = static_cast<std::byte*>(p);
    auto* aligned = reinterpret_cast<std::byte*>((reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1));
    if (aligned > base) ::munmap(base, static_cast<size_t>(aligned - base));
    const size_t tail = static_cast<size_t>((base + len) - (aligned + mapped_size_));
    if (tail > 0) ::munmap(aligned + mapped_size_, tail);
    ::madvise(aligned, mapped_size_, MADV_HUGEPAGE);
    size_t done = 0;
    while (done < size_) {
      ssize_t r = ::pread(fd, aligned + done, std::min<size_t>(size_ - done, size_t{64} << 20), static_cast<off_t>(done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        int e = r < 0 ? errno : EIO;
        ::munmap(aligned, mapped_size_);
        ::close(fd);
        throw Error("cannot read " + path + ": " + std::strerror(e));
      }
      done += static_cast<size_t>(r);
    }
    ::mprotect(aligned, mapped_size_, PROT_READ);
    data_ = aligned;
    copied_ = true;
    copy_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } else if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error("cannot map " + path + ": " + std::strerror(e));
    }
    data_ = static_cast<std::byte*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, copied_ ? mapped_size_ : size_);
}

void MappedFile::prefetch() const {
  if (data_ && !copied_) ::madvise(data_, size_, MADV_WILLNEED);
}

}  // namespace huginn
