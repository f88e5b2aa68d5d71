// GGUF reader/writer: round trip and malformed files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "huginn/error.h"
#include "io/gguf.h"
#include "test_util.h"

namespace huginn {
namespace {

std::string expect_error(const std::vector<std::byte>& bytes) {
  try {
    parse_gguf(bytes, "bad.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

std::vector<std::byte> read_bytes(const std::string& p) {
  std::string s = test::read_file(p);
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

std::string write_sample() {
  std::string path = test::temp_dir() + "/m.gguf";
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<GgufTensorToWrite> t = {
      {"a", DType::F32, {2, 3}, 24, [&](std::byte* o) { std::memcpy(o, a.data(), 24); }},
      {"b", DType::F32, {3}, 12, [&](std::byte* o) { std::memcpy(o, a.data(), 12); }},
  };
  write_gguf(path, {{"general.architecture", std::string("huginn")}, {"x.int", int64_t{-5}}, {"x.f", 2.5},
                    {"x.b", true}, {"x.arr", std::vector<std::string>{"p", "q"}}},
             t);
  return path;
}

TEST(Gguf, RoundTrip) {
  GgufReader r(write_sample());
  const auto& g = r.file();
  EXPECT_EQ(std::get<std::string>(g.metadata.at("general.architecture")), "huginn");
  EXPECT_EQ(std::get<int64_t>(g.metadata.at("x.int")), -5);
  EXPECT_EQ(std::get<double>(g.metadata.at("x.f")), 2.5);
  EXPECT_EQ(std::get<bool>(g.metadata.at("x.b")), true);
  EXPECT_EQ(std::get<std::vector<std::string>>(g.metadata.at("x.arr")).size(), 2u);
  const auto& a = g.tensors.at("a");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 32, 0u);
  float v[6];
  std::memcpy(v, a.data, 24);
  EXPECT_EQ(v[5], 6.0f);
}

TEST(Gguf, MalformedFilesGiveErrors) {
  auto good = read_bytes(write_sample());
  EXPECT_NE(expect_error({}).find("bad magic"), std::string::npos);
  auto bad_magic = good;
  bad_magic[0] = std::byte{'X'};
  EXPECT_NE(expect_error(bad_magic).find("bad magic"), std::string::npos);
  auto bad_version = good;
  bad_version[4] = std::byte{9};
  EXPECT_NE(expect_error(bad_version).find("version 9"), std::string::npos);
  // Every truncation is reported, never read past the end.
  for (size_t n : {size_t{10}, size_t{30}, size_t{100}, good.size() - 1}) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    std::string msg = expect_error(cut);
    EXPECT_NE(msg.find("bad.gguf"), std::string::npos) << n;
    EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("past the end") != std::string::npos) << msg;
  }
  // A huge tensor-count field.
  auto big = good;
  for (int i = 8; i < 16; ++i) big[static_cast<size_t>(i)] = std::byte{0xff};
  EXPECT_NE(expect_error(big).find("implausible"), std::string::npos);
  // Found by gguf_fuzz: two dims of 2^36 and 2^40, each allowed, whose product
  // overflowed int64 in numel() (UB) before the size checks ran.
  const unsigned char overflow[] = {71, 71, 85, 70, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 103, 101, 110, 101, 114, 97, 108, 46, 97, 114, 99, 104, 105, 116, 101, 99, 116, 117, 114, 101, 8, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 104, 117, 103, 105, 110, 110, 1, 0, 0, 0, 0, 0, 0, 0, 116, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 8, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<std::byte> ov(sizeof overflow);
  std::memcpy(ov.data(), overflow, sizeof overflow);
  EXPECT_NE(expect_error(ov).find("tensor 't' is too large"), std::string::npos) << expect_error(ov);
}

// Q4_SB (huginn's own type id 1024) round-trips; a Q4_SB tensor whose rows
// are not a multiple of 160 is rejected by the parser.
TEST(Gguf, Q4SBTensors) {
  std::string path = test::temp_dir() + "/sb.gguf";
  std::vector<std::byte> blocks(180, std::byte{0x11});
  write_gguf(path, {{"general.architecture", std::string("huginn")}},
             {{"q", DType::Q4_SB, {2, 160}, 180, [&](std::byte* o) { std::memcpy(o, blocks.data(), 180); }},
              {"f", DType::F32, {2, 40}, 320, [&](std::byte* o) { std::memset(o, 0, 320); }}});
  auto bytes = read_bytes(path);
  auto g = parse_gguf(bytes, path);
  EXPECT_EQ(g.tensors.at("q").dtype, DType::Q4_SB);
  EXPECT_EQ(g.tensors.at("q").nbytes, 180u);
  // Retype "f" (rows of 40) as Q4_SB: its tensor info is name "f", u32 n_dims,
  // 2 x u64 dims, then the u32 type.
  const unsigned char name_f[] = {1, 0, 0, 0, 0, 0, 0, 0, 'f'};
  auto it = std::search(bytes.begin(), bytes.end(), reinterpret_cast<const std::byte*>(name_f),
                        reinterpret_cast<const std::byte*>(name_f) + sizeof name_f);
  ASSERT_NE(it, bytes.end());
  const size_t type_at = static_cast<size_t>(it - bytes.begin()) + sizeof name_f + 4 + 16;
  const uint32_t q4sb = 1024;
  std::memcpy(bytes.data() + type_at, &q4sb, 4);
  EXPECT_NE(expect_error(bytes).find("tensor 'f' row length is not a multiple of its block size"), std::string::npos)
      << expect_error(bytes);
}

// Found by gguf_fuzz: a float array holding 7e22 was cast to int64 (UB). Float
// arrays are now kept as doubles; this input then fails later, cleanly.
TEST(Gguf, FloatArraysKeepTheirValues) {
  const unsigned char fuzz[] = {71, 71, 85, 70, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 103, 101, 110, 97, 114, 97, 108, 46, 97, 114, 99, 104, 105, 116, 101, 99, 116, 117, 114, 1, 9, 0, 0, 0, 6, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 103, 101, 110, 101, 114, 97, 108, 46, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<std::byte> in(sizeof fuzz);
  std::memcpy(in.data(), fuzz, sizeof fuzz);
  EXPECT_NE(expect_error(in).find("bad.gguf"), std::string::npos);
  std::string path = test::temp_dir() + "/f.gguf";
  write_gguf(path, {{"x.floats", std::vector<double>{0.5, -7e22, 3.25}}}, {});
  auto g = parse_gguf(read_bytes(path), path);
  EXPECT_EQ(std::get<std::vector<double>>(g.metadata.at("x.floats")), (std::vector<double>{0.5, -7e22, 3.25}));
}

}  // namespace
}  // namespace huginn
