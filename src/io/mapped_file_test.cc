// MappedFile: page-cache mapping and the copy-to-huge-pages option give the same bytes.
#include "io/mapped_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace huginn {
namespace {

TEST(MappedFile, CopyToHugePagesMatchesMapping) {
  const std::string path = testing::TempDir() + "mapped_file_test_" + std::to_string(getpid());
  std::vector<char> bytes((3u << 20) + 12345);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + (i >> 11));
  { std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size())); }
  MappedFile a(path);
  MappedFile b(path, MappedFileOptions{true});
  EXPECT_FALSE(a.copied());
  EXPECT_TRUE(b.copied());
  ASSERT_EQ(a.size(), bytes.size());
  ASSERT_EQ(b.size(), bytes.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (2u << 20), 0u);
  EXPECT_EQ(std::memcmp(a.data(), bytes.data(), bytes.size()), 0);
  EXPECT_EQ(std::memcmp(b.data(), bytes.data(), bytes.size()), 0);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace huginn
