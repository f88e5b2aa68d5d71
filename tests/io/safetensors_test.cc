// safetensors parsing: every malformed input gives a huginn::Error naming the
// source (file) and, where it applies, the tensor; never a crash. Inputs are
// built byte by byte here (raw headers) or with write_safetensors.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "throws_with.h"
#include "huginn/error.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace huginn {
namespace {

using test::ThrowsWith;

// A safetensors image: 8-byte little-endian length, `header` (padded with
// spaces to a multiple of 8 when `pad`), then `data_bytes` bytes 0, 1, 2, ...
std::vector<std::byte> image(std::string header, size_t data_bytes, bool pad = true) {
  if (pad)
    while (header.size() % 8) header.push_back(' ');
  std::vector<std::byte> out(8 + header.size() + data_bytes);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<std::byte>(n >> (8 * i) & 0xff);
  std::memcpy(out.data() + 8, header.data(), header.size());
  for (size_t i = 0; i < data_bytes; ++i) out[8 + header.size() + i] = static_cast<std::byte>(i & 0xff);
  return out;
}

SafetensorsHeader parse(const std::vector<std::byte>& b, const std::string& src = "x.safetensors") {
  return parse_safetensors(std::span<const std::byte>(b.data(), b.size()), src);
}

// One tensor entry of a header.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(b) +
         "," + std::to_string(e) + "]}";
}

TEST(Safetensors, ParsesValidImage) {
  auto b = image("{\"__metadata__\":{\"format\":\"pt\"}," + entry("a", "F32", "[2,3]", 0, 24) + "," +
                     entry("b", "BF16", "[4]", 24, 32) + "," + entry("scalar", "F16", "[]", 32, 34) + "}",
                 34);
  auto h = parse(b);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  ASSERT_EQ(h.tensors.size(), 3u);
  const auto& a = h.tensors.at("a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(h.tensors.at("b").dtype, DType::BF16);
  EXPECT_EQ(h.tensors.at("b").data - a.data, 24);
  EXPECT_EQ(h.tensors.at("scalar").numel(), 1);
  EXPECT_EQ(h.tensors.at("scalar").nbytes, 2u);
}

TEST(Safetensors, EmptyHeaderAndZeroSizedTensors) {
  EXPECT_TRUE(parse(image("{}", 0)).tensors.empty());
  // Zero-element tensors may share an offset with each other and with a neighbour.
  auto h = parse(image("{" + entry("e1", "F32", "[0,4]", 0, 0) + "," + entry("e2", "F32", "[0]", 0, 0) + "," +
                           entry("a", "F32", "[1]", 0, 4) + "}",
                       4));
  EXPECT_EQ(h.tensors.size(), 3u);
}

TEST(Safetensors, UnpaddedHeaderIsAccepted) {
  std::string hdr = "{" + entry("a", "BF16", "[3]", 0, 6) + "}";
  if (hdr.size() % 2 == 0) hdr += " ";  // make the data section start at an odd address
  auto b = image(hdr, 6, /*pad=*/false);
  auto h = parse(b);
  EXPECT_EQ(h.tensors.at("a").numel(), 3);
}

TEST(Safetensors, OtherDtypesParseButAreMarked) {
  auto h = parse(image("{" + entry("ids", "I64", "[2]", 0, 16) + "," + entry("mask", "BOOL", "[3]", 16, 19) + "}", 19));
  EXPECT_EQ(h.tensors.at("ids").nbytes, 16u);
  // The view's name carries the dtype so the loader can say what it could not use.
  EXPECT_NE(h.tensors.at("ids").name.find("I64"), std::string::npos);
}

TEST(SafetensorsMalformed, TooShortForLength) {
  for (size_t n : {0, 1, 7}) {
    std::vector<std::byte> b(n, std::byte{0});
    EXPECT_TRUE(ThrowsWith([&] { parse(b, "short.safetensors"); }, {"short.safetensors", "truncated"})) << n;
  }
}

TEST(SafetensorsMalformed, HeaderLengthPastEnd) {
  auto b = image("{}", 0);
  b[0] = std::byte{0x40};  // claims 64 bytes of header, only 8 follow
  EXPECT_TRUE(ThrowsWith([&] { parse(b, "f.st"); }, {"f.st", "header length 64", "past the end"}));
  // A length near 2^64 must not wrap around.
  for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = std::byte{0xff};
  EXPECT_TRUE(ThrowsWith([&] { parse(b, "f.st"); }, {"f.st", "past the end"}));
  b[7] = std::byte{0x7f};
  EXPECT_TRUE(ThrowsWith([&] { parse(b, "f.st"); }, {"f.st", "past the end"}));
}

TEST(SafetensorsMalformed, BadJson) {
  for (std::string h : {std::string("{\"a\":"), std::string("not json"), std::string("{\"a\":1,}"),
                        std::string("\xff\xfe{}"), std::string("{\0}", 3)}) {
    auto b = image(h, 0, false);
    EXPECT_TRUE(ThrowsWith([&] { parse(b, "bad.st"); }, {"bad.st", "JSON"})) << h;
  }
}

TEST(SafetensorsMalformed, HeaderNotAnObject) {
  for (std::string h : {"[]", "1", "\"x\"", "null"})
    EXPECT_TRUE(ThrowsWith([&] { parse(image(h, 0), "s.st"); }, {"s.st", "not a JSON object"})) << h;
}

TEST(SafetensorsMalformed, EntryFields) {
  struct Case {
    std::string header, want;
  };
  const std::vector<Case> cases = {
      {"{\"w\":1}", "not an object"},
      {"{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype"},
      {"{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype"},
      {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "shape"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", "shape"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", "data_offsets"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "data_offsets"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", "data_offsets"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":0,\"b\":4}}}", "data_offsets"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", "data_offsets"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,4]}}", "data_offsets"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4]}}", "data_offsets"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "shape"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "shape"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", "shape"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}", "shape"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627777],\"data_offsets\":[0,4]}}", "too large"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1048576,1048576,1048576,1048576],\"data_offsets\":[0,4]}}", "too large"},
      {"{\"w\":{\"dtype\":\"F64\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}", "too large"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615],\"data_offsets\":[0,4]}}", "too large"},
      {"{\"w\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype 'F7'"},
      {"{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype 'f32'"},
      {"{\"w\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype"},
  };
  for (const auto& c : cases)
    EXPECT_TRUE(ThrowsWith([&] { parse(image(c.header, 16), "m.safetensors"); }, {"m.safetensors", "'w'", c.want}))
        << c.header;
}

TEST(SafetensorsMalformed, OffsetsOutOfRange) {
  EXPECT_TRUE(ThrowsWith([&] { parse(image("{" + entry("w", "F32", "[2]", 8, 0) + "}", 8), "o.st"); },
                         {"o.st", "'w'", "begin 8 > end 0"}));
  EXPECT_TRUE(ThrowsWith([&] { parse(image("{" + entry("w", "F32", "[4]", 0, 16) + "}", 12), "o.st"); },
                         {"o.st", "'w'", "past the end of the data section"}));
  EXPECT_TRUE(ThrowsWith(
      [&] { parse(image("{" + entry("w", "F32", "[1]", 18446744073709551612ull, 18446744073709551615ull) + "}", 8), "o.st"); },
      {"o.st", "'w'"}));
}

TEST(SafetensorsMalformed, SizeNotMatchingShape) {
  EXPECT_TRUE(ThrowsWith([&] { parse(image("{" + entry("w", "F32", "[2,3]", 0, 20) + "}", 24), "z.st"); },
                         {"z.st", "'w'", "holds 20 bytes", "[2, 3]", "F32", "needs 24"}));
  EXPECT_TRUE(ThrowsWith([&] { parse(image("{" + entry("w", "BF16", "[3]", 0, 8) + "}", 8), "z.st"); },
                         {"z.st", "'w'", "needs 6"}));
}

TEST(SafetensorsMalformed, OverlappingOffsets) {
  EXPECT_TRUE(ThrowsWith(
      [&] { parse(image("{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("b", "F32", "[2]", 8, 16) + "}", 16), "ov.st"); },
      {"ov.st", "'a'", "'b'", "overlapping"}));
  // Same range twice.
  EXPECT_TRUE(ThrowsWith(
      [&] { parse(image("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 0, 8) + "}", 8), "ov.st"); },
      {"ov.st", "overlapping"}));
  // A range nested inside a big one with a zero-sized tensor between them (sorted
  // by begin, the empty one separates the overlapping pair).
  EXPECT_TRUE(ThrowsWith(
      [&] {
        parse(image("{" + entry("big", "F32", "[8]", 0, 32) + "," + entry("empty", "F32", "[0]", 4, 4) + "," +
                        entry("inner", "F32", "[1]", 8, 12) + "}",
                    32),
              "ov.st");
      },
      {"ov.st", "'big'", "'inner'", "overlapping"}));
  // Nested after a short one: big [0,32), small [4,8), inner [16,20).
  EXPECT_TRUE(ThrowsWith(
      [&] {
        parse(image("{" + entry("big", "F32", "[8]", 0, 32) + "," + entry("small", "F32", "[1]", 4, 8) + "," +
                        entry("inner", "F32", "[1]", 16, 20) + "}",
                    32),
              "ov.st");
      },
      {"ov.st", "overlapping"}));
}

TEST(SafetensorsMalformed, Metadata) {
  EXPECT_TRUE(ThrowsWith([&] { parse(image("{\"__metadata__\":[1]}", 0), "md.st"); }, {"md.st", "__metadata__"}));
  EXPECT_TRUE(
      ThrowsWith([&] { parse(image("{\"__metadata__\":{\"format\":1}}", 0), "md.st"); }, {"md.st", "__metadata__", "format"}));
}

TEST(SafetensorsFile, RoundTripThroughWriter) {
  const std::string dir = test::temp_dir();
  std::vector<float> a = {1.5f, -2.f, 3.25f, 0.f, 7.f, -8.f};
  std::vector<uint16_t> b = {f32_to_bf16(1.f), f32_to_bf16(-0.5f), f32_to_bf16(3.f)};
  write_safetensors(dir + "/t.safetensors",
                    {{"b", DType::BF16, {3}, b.data(), b.size() * 2},
                     {"a", DType::F32, {2, 3}, a.data(), a.size() * 4},
                     {"g", DType::F16, {2}, nullptr, 4, [](std::byte* p) {
                        uint16_t v[2] = {f32_to_f16(0.25f), f32_to_f16(-1.f)};
                        std::memcpy(p, v, 4);
                      }}});
  SafetensorsFile f(dir + "/t.safetensors");
  EXPECT_EQ(f.header().metadata.at("format"), "pt");
  const auto& ta = f.header().tensors.at("a");
  std::vector<float> got(6);
  to_f32(ta.dtype, ta.data, 6, got.data());
  EXPECT_EQ(got, a);
  const auto& tb = f.header().tensors.at("b");
  to_f32(tb.dtype, tb.data, 3, got.data());
  EXPECT_EQ(got[1], -0.5f);
  const auto& tg = f.header().tensors.at("g");
  to_f32(tg.dtype, tg.data, 2, got.data());
  EXPECT_EQ(got[0], 0.25f);
  EXPECT_EQ(got[1], -1.f);
  // The writer pads the header so the data section is 8-byte aligned.
  uint64_t n = 0;
  std::memcpy(&n, f.file().data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(SafetensorsFile, WriterRejectsWrongSize) {
  std::vector<float> a(5);
  const std::string dir = test::temp_dir();
  EXPECT_TRUE(ThrowsWith([&] { write_safetensors(dir + "/w.safetensors", {{"a", DType::F32, {2, 3}, a.data(), 20}}); },
                         {"'a'", "20 bytes"}));
}

TEST(SafetensorsFile, TruncatedFileNamesPathAndTensor) {
  const std::string dir = test::temp_dir();
  std::vector<float> a(16, 1.f), z(16, 2.f);
  write_safetensors(dir + "/full.safetensors", {{"a", DType::F32, {16}, a.data(), 64}, {"z", DType::F32, {16}, z.data(), 64}});
  std::string bytes = test::read_file(dir + "/full.safetensors");
  for (size_t cut : {size_t{1}, size_t{63}, size_t{64}, size_t{100}}) {
    std::string p = dir + "/cut" + std::to_string(cut) + ".safetensors";
    std::ofstream(p, std::ios::binary) << bytes.substr(0, bytes.size() - cut);
    // The last tensor in the file ("z") loses its bytes first.
    EXPECT_TRUE(ThrowsWith([&] { SafetensorsFile f(p); }, {p, cut <= 64 ? "'z'" : "'a'", "past the end"})) << cut;
  }
  // Cut inside the header.
  std::string p = dir + "/cuthdr.safetensors";
  std::ofstream(p, std::ios::binary) << bytes.substr(0, 20);
  EXPECT_TRUE(ThrowsWith([&] { SafetensorsFile f(p); }, {p, "past the end"}));
}

TEST(SafetensorsFile, MissingEmptyAndDirectory) {
  const std::string dir = test::temp_dir();
  EXPECT_TRUE(ThrowsWith([&] { SafetensorsFile f(dir + "/nope.safetensors"); }, {dir + "/nope.safetensors"}));
  std::ofstream(dir + "/empty.safetensors").close();
  EXPECT_TRUE(ThrowsWith([&] { SafetensorsFile f(dir + "/empty.safetensors"); }, {dir + "/empty.safetensors", "truncated"}));
  EXPECT_TRUE(ThrowsWith([&] { SafetensorsFile f(dir); }, {dir, "not a regular file"}));
  EXPECT_TRUE(ThrowsWith([&] { MappedFile f(dir + "/nope"); }, {dir + "/nope"}));
}

TEST(SafetensorsFile, MappedFileBasics) {
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/m", std::ios::binary) << "hello";
  MappedFile f(dir + "/m");
  EXPECT_EQ(f.size(), 5u);
  EXPECT_EQ(std::memcmp(f.data(), "hello", 5), 0);
  EXPECT_EQ(f.path(), dir + "/m");
  f.prefetch();
  std::ofstream(dir + "/e", std::ios::binary).close();
  MappedFile e(dir + "/e");
  EXPECT_EQ(e.size(), 0u);
  e.prefetch();
}

TEST(SafetensorsFile, GoldenTinyCheckpoint) {
  const std::string p = test::golden_dir() + "/model/tiny/model.safetensors";
  SafetensorsFile f(p);
  const auto& t = f.header().tensors;
  EXPECT_EQ(f.header().metadata.at("format"), "pt");
  // 8 blocks x 9 tensors + wte, lm_head, adapter, ln_f, freqs_cis.
  EXPECT_EQ(t.size(), 8u * 9 + 5);
  EXPECT_EQ(t.at("transformer.wte.weight").shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(t.at("transformer.wte.weight").dtype, DType::BF16);
  EXPECT_EQ(t.at("freqs_cis").dtype, DType::F32);
  EXPECT_EQ(t.at("freqs_cis").shape, (std::vector<int64_t>{1, 256, 1, 8, 2}));
  EXPECT_EQ(t.at("transformer.core_block.3.attn.qk_bias").shape, (std::vector<int64_t>{2, 1, 4, 16}));
  EXPECT_EQ(std::memcmp(t.at("lm_head.weight").data, t.at("transformer.wte.weight").data, 512 * 64 * 2), 0);
  // Every truncation of the real file is rejected with its name.
  std::string bytes = test::read_file(p);
  const std::string dir = test::temp_dir();
  for (size_t keep : {size_t{0}, size_t{5}, size_t{8}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    std::vector<std::byte> b(keep);
    if (keep) std::memcpy(b.data(), bytes.data(), keep);
    EXPECT_TRUE(ThrowsWith([&] { parse(b, "tiny.safetensors"); }, {"tiny.safetensors"})) << keep;
  }
}

}  // namespace
}  // namespace huginn
