// Loading a Hugging Face model directory: every malformed checkpoint gives a
// huginn::Error naming the file and (where it applies) the tensor or key,
// never a crash; the published files' quirks (duplicate tied lm_head.weight,
// the freqs_cis buffer, unknown extra tensors/keys) are tolerated; F32, F16
// and differently sharded copies of the golden tiny model load and reproduce
// its forward logits.
//
// Malformed checkpoints are copies of ../shared/golden/model/tiny (never
// modified) rewritten into a fresh temp dir with a raw safetensors writer, so
// headers can hold anything (unknown dtypes, bad offsets, odd lengths).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "throws_with.h"
#include "golden.h"
#include "huginn/engine.h"
#include "huginn/error.h"
#include "huginn/model.h"
#include "io/safetensors.h"

namespace huginn {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using test::ThrowsWith;

std::string tiny_dir() { return test::golden_dir() + "/model/tiny"; }

// A tensor held in memory, with its dtype as the header string.
struct Owned {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
  // Offsets to write instead of the natural ones (for corrupt headers).
  std::optional<std::pair<uint64_t, uint64_t>> offsets;
};

// The tensors of the golden tiny checkpoint, in file (name) order.
std::vector<Owned> tiny_tensors() {
  SafetensorsFile f(tiny_dir() + "/model.safetensors");
  std::vector<Owned> out;
  for (const auto& [name, v] : f.header().tensors) {
    Owned o{name, std::string(dtype_name(v.dtype)), v.shape, {}, std::nullopt};
    o.bytes.assign(v.data, v.data + v.nbytes);
    out.push_back(std::move(o));
  }
  return out;
}

Owned* find(std::vector<Owned>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return &t;
  ADD_FAILURE() << "no tensor " << name;
  return nullptr;
}

void remove_tensor(std::vector<Owned>& ts, const std::string& name) {
  std::erase_if(ts, [&](const Owned& t) { return t.name == name; });
}

// Writes a safetensors file. `header_pad`: pad the header with spaces to a
// multiple of this (1 = none; the header is then made odd-length so the data
// section is misaligned).
void write_raw(const std::string& path, const std::vector<Owned>& ts, size_t header_pad = 8) {
  json h = json::object();
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const auto& t : ts) {
    auto [b, e] = t.offsets.value_or(std::make_pair(off, off + t.bytes.size()));
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {b, e}}};
    off += t.bytes.size();
  }
  std::string hs = h.dump();
  if (header_pad == 1) {
    if (hs.size() % 2 == 0) hs += ' ';
  } else {
    while (hs.size() % header_pad) hs += ' ';
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  uint64_t n = hs.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(n >> (8 * i) & 0xff);
  f.write(len, 8);
  f.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  for (const auto& t : ts) f.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// A fresh model dir with the tiny config (optionally patched) and the given tensors.
std::string make_model(const std::vector<Owned>& ts, const json& config_patch = json::object(), size_t header_pad = 8) {
  std::string dir = test::temp_dir();
  json cfg = json::parse(test::read_file(tiny_dir() + "/config.json"));
  cfg.merge_patch(config_patch);
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  fs::copy_file(tiny_dir() + "/generation_config.json", dir + "/generation_config.json");
  write_raw(dir + "/model.safetensors", ts, header_pad);
  return dir;
}

// Forward of the golden prompt at `steps`, compared with the golden logits.
double forward_diff(const Model& m, int64_t steps) {
  test::GoldenModel g("tiny");
  Engine engine(m, EngineOptions{1});  // one thread: see the report on ThreadPool shutdown
  Engine::Options o;
  o.steps = steps;
  auto r = engine.forward(g.prompt(), nullptr, o);
  auto want = g.array("forward.n" + std::to_string(steps) + ".logits");
  EXPECT_EQ(r.logits.size(), want.data.size());
  if (r.logits.size() != want.data.size()) return INFINITY;
  return test::max_abs_diff(r.logits.data(), want.data.data(), r.logits.size());
}

double forward_atol() { return test::GoldenModel("tiny").atol("forward"); }

// ---- directory-level problems ----

TEST(LoaderErrors, PathProblems) {
  const std::string dir = test::temp_dir();
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir + "/nope"); }, {dir + "/nope", "does not exist"}));
  std::ofstream(dir + "/file") << "x";
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir + "/file"); }, {dir + "/file", "model directory"}));
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir, "config.json"}));
  fs::copy_file(tiny_dir() + "/config.json", dir + "/config.json");
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir, "model.safetensors"}));
}

TEST(LoaderErrors, BadConfigNamesFileAndKey) {
  auto ts = tiny_tensors();
  std::string dir = make_model(ts, {{"n_heads", 5}});
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/config.json", "'n_heads'"}));
  dir = make_model(ts, {{"injection_type", "gate"}});
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/config.json", "'injection_type'"}));
  dir = make_model(ts, {{"model_type", "llama"}});
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/config.json", "'model_type'"}));
  std::ofstream(dir + "/config.json") << "{\"n_embd\": 64,";
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/config.json", "JSON"}));
  std::ofstream(dir + "/config.json") << "[64]";
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/config.json", "object"}));
  // A config that disagrees with the tensors: shapes no longer match.
  dir = make_model(ts, {{"intermediate_size", 128}});
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "mlp.fc.weight", "[320, 64]", "[256, 64]"}));
  dir = make_model(ts, {{"vocab_size", 500}});
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "transformer.wte.weight", "expected [500, 64]"}));
}

// ---- malformed weight files ----

TEST(LoaderErrors, MissingTensors) {
  for (const std::string name : {"transformer.core_block.2.mlp.fc.weight", "transformer.wte.weight",
                                 "transformer.adapter.weight", "transformer.ln_f.weight",
                                 "transformer.prelude.0.norm_1.weight", "transformer.coda.1.norm_4.weight",
                                 "transformer.core_block.0.attn.qk_bias", "transformer.coda.0.attn.proj.weight"}) {
    auto ts = tiny_tensors();
    remove_tensor(ts, name);
    const std::string dir = make_model(ts);
    EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "'" + name + "'", "missing"}));
  }
}

TEST(LoaderErrors, WrongShapes) {
  struct Case {
    std::string name;
    std::vector<int64_t> shape;  // same number of elements, other layout
    std::string got, want;
  };
  const std::vector<Case> cases = {
      {"transformer.prelude.1.attn.Wqkv.weight", {64, 192}, "[64, 192]", "[192, 64]"},
      {"transformer.core_block.1.attn.qk_bias", {2, 4, 16}, "[2, 4, 16]", "[2, 1, 4, 16]"},
      {"transformer.core_block.3.norm_2.weight", {1, 64}, "[1, 64]", "[64]"},
      {"transformer.adapter.weight", {8192}, "[8192]", "[64, 128]"},
      {"transformer.wte.weight", {64, 512}, "[64, 512]", "[512, 64]"},
      {"transformer.coda.0.mlp.proj.weight", {160, 64}, "[160, 64]", "[64, 160]"},
  };
  for (const auto& c : cases) {
    auto ts = tiny_tensors();
    find(ts, c.name)->shape = c.shape;
    const std::string dir = make_model(ts);
    EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "'" + c.name + "'", c.got, c.want}));
  }
}

TEST(LoaderErrors, UnknownAndUnsupportedDtypes) {
  {
    auto ts = tiny_tensors();
    find(ts, "transformer.coda.1.attn.Wqkv.weight")->dtype = "BF17";
    const std::string dir = make_model(ts);
    EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); },
                           {dir + "/model.safetensors", "'transformer.coda.1.attn.Wqkv.weight'", "unknown dtype 'BF17'"}));
  }
  // Valid safetensors dtypes the engine cannot compute with (same byte size).
  for (const std::string name : {"transformer.coda.1.attn.Wqkv.weight", "transformer.prelude.0.norm_3.weight"}) {
    auto ts = tiny_tensors();
    find(ts, name)->dtype = "I16";
    const std::string dir = make_model(ts);
    EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "'" + name + "'", "unsupported dtype", "I16"}));
  }
  // An unused tensor of an odd dtype is fine.
  auto ts = tiny_tensors();
  ts.push_back({"extra.step_counter", "I64", {1}, std::vector<std::byte>(8), std::nullopt});
  EXPECT_NO_THROW(Model::load(make_model(ts)));
}

TEST(LoaderErrors, SizeNotMatchingShapeTimesDtype) {
  auto ts = tiny_tensors();
  Owned* t = find(ts, "transformer.core_block.0.mlp.proj.weight");
  t->dtype = "F32";  // 2 bytes per element stored, 4 claimed
  std::string dir = make_model(ts);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); },
                         {dir + "/model.safetensors", "'transformer.core_block.0.mlp.proj.weight'", "holds 20480 bytes",
                          "needs 40960"}));
  ts = tiny_tensors();
  find(ts, "transformer.ln_f.weight")->shape = {65};
  dir = make_model(ts);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "'transformer.ln_f.weight'", "needs 130"}));
}

TEST(LoaderErrors, OffsetsOutOfRangeOrOverlapping) {
  auto ts = tiny_tensors();
  find(ts, "transformer.coda.0.norm_1.weight")->offsets = std::make_pair(uint64_t{10'000'000}, uint64_t{10'000'128});
  std::string dir = make_model(ts);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "'transformer.coda.0.norm_1.weight'", "past the end"}));
  ts = tiny_tensors();
  find(ts, "transformer.coda.0.norm_1.weight")->offsets = std::make_pair(uint64_t{128}, uint64_t{0});
  dir = make_model(ts);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "'transformer.coda.0.norm_1.weight'", "begin 128 > end 0"}));
  // Two tensors pointing at the same bytes.
  ts = tiny_tensors();
  find(ts, "transformer.coda.0.norm_2.weight")->offsets = std::make_pair(uint64_t{0}, uint64_t{128});
  find(ts, "transformer.coda.0.norm_3.weight")->offsets = std::make_pair(uint64_t{64}, uint64_t{192});
  dir = make_model(ts);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "overlapping", "transformer.coda.0.norm_"}));
}

TEST(LoaderErrors, TruncatedAndCorruptFiles) {
  const std::string dir = make_model(tiny_tensors());
  const std::string path = dir + "/model.safetensors";
  const std::string bytes = test::read_file(path);
  // The last tensor in the data section is transformer.wte.weight (name order).
  for (size_t cut : {size_t{1}, size_t{4096}, size_t{65536}}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - cut);
    EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {path, "'transformer.wte.weight'", "past the end"})) << cut;
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, 4);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {path, "truncated"}));
  std::ofstream(path, std::ios::binary | std::ios::trunc).close();
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {path, "truncated"}));
  // Header length past the end.
  std::string b = bytes;
  b[5] = '\x01';
  std::ofstream(path, std::ios::binary | std::ios::trunc) << b;
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {path, "header length", "past the end"}));
  // Bad JSON in the header.
  b = bytes;
  b[8] = '[';
  b[9] = '!';
  std::ofstream(path, std::ios::binary | std::ios::trunc) << b;
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {path, "JSON"}));
  // A number JSON cannot hold as a double.
  b = bytes;
  const std::string needle = "\"data_offsets\":[0,";
  size_t at = b.find(needle);
  ASSERT_NE(at, std::string::npos);
  b.replace(at + needle.size() - 2, 1, "1e999");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << b;
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {path}));
  // The model file is a directory.
  fs::remove(path);
  fs::create_directory(path);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {path, "not a regular file"}));
}

// ---- quirks of published files ----

TEST(LoaderQuirks, TiedLmHeadPresentOrAbsent) {
  const double atol = forward_atol();
  {
    auto m = Model::load(tiny_dir());  // has the duplicate lm_head.weight
    EXPECT_EQ(m->weights().lm_head.data, m->weights().wte.data) << "tied: the head reuses wte";
    EXPECT_EQ(m->param_counts().lm_head, 0);
  }
  auto ts = tiny_tensors();
  remove_tensor(ts, "lm_head.weight");
  auto m = Model::load(make_model(ts));
  EXPECT_LE(forward_diff(*m, 4), atol);
  // Untied config: lm_head.weight is required and used.
  std::string dir = make_model(ts, {{"tie_embeddings", false}});
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model.safetensors", "'lm_head.weight'", "missing"}));
  auto untied = Model::load(make_model(tiny_tensors(), {{"tie_embeddings", false}}));
  EXPECT_NE(untied->weights().lm_head.data, untied->weights().wte.data);
  EXPECT_EQ(untied->param_counts().lm_head, 512 * 64);
  EXPECT_LE(forward_diff(*untied, 4), atol);
}

TEST(LoaderQuirks, FreqsCisPresentOrAbsentAndExtraTensors) {
  const double atol = forward_atol();
  auto ts = tiny_tensors();
  remove_tensor(ts, "freqs_cis");
  auto m = Model::load(make_model(ts));
  EXPECT_LE(forward_diff(*m, 4), atol);
  // A freqs_cis of another length (a different block_size) is not used either.
  ts = tiny_tensors();
  Owned* f = find(ts, "freqs_cis");
  f->shape = {1, 2, 1, 8, 2};
  f->bytes.resize(2 * 8 * 2 * 4);
  ts.push_back({"transformer.something_new", "BF16", {3}, std::vector<std::byte>(6), std::nullopt});
  auto m2 = Model::load(make_model(ts, {{"an_unknown_key", {1, 2}}}));
  EXPECT_LE(forward_diff(*m2, 4), atol);
}

// ---- other weight dtypes ----

std::vector<Owned> converted(DType to) {
  auto ts = tiny_tensors();
  for (auto& t : ts) {
    if (t.dtype != "BF16") continue;
    const size_t n = t.bytes.size() / 2;
    std::vector<float> f(n);
    to_f32(DType::BF16, t.bytes.data(), static_cast<int64_t>(n), f.data());
    if (to == DType::F32) {
      t.bytes.resize(n * 4);
      std::memcpy(t.bytes.data(), f.data(), n * 4);
    } else {
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_f16(f[i]);
        std::memcpy(t.bytes.data() + 2 * i, &h, 2);
      }
    }
    t.dtype = std::string(dtype_name(to));
  }
  return ts;
}

TEST(LoaderDtypes, F32WeightsMatchGolden) {
  auto m = Model::load(make_model(converted(DType::F32)));
  EXPECT_EQ(m->weights().wte.dtype, DType::F32);
  EXPECT_EQ(m->weights().core[3].fc.dtype, DType::F32);
  // BF16 -> F32 is exact, so the numbers are those of the BF16 checkpoint.
  const double atol = forward_atol();
  for (int64_t n : {1, 4, 8}) EXPECT_LE(forward_diff(*m, n), atol) << n;
}

// F16 has 3 more mantissa bits than BF16 but a smaller range: every BF16
// value with 2^-14 <= |w| <= 65504 is exact in F16, smaller ones become F16
// subnormals with an absolute error of at most 2^-25 (half of the subnormal
// step 2^-24). The test measures that bound on the weights, then bounds the
// logits: a weight error d moves a matmul output by at most d * sum|x| over
// the input row; with inputs that are RMS-normalised (|x| ~ 1, E or I <= 160
// terms) each matmul moves by <= 160 * 2^-25 ~ 4.8e-6 in the worst case, and
// the typical (random-sign) effect is ~sqrt(160) * 2^-25 ~ 4e-7. Summed over
// the ~30 matmuls in the path at 4 steps this stays below 1.5e-4 even in the
// worst case; we allow 2e-4 on top of the float32 tolerance (logits are O(1),
// |logit| <= 2.3).
TEST(LoaderDtypes, F16WeightsMatchGoldenWithinRounding) {
  auto ts = converted(DType::F16);
  // Measure the rounding of the conversion.
  auto orig = tiny_tensors();
  double max_err = 0;
  size_t changed = 0, total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (orig[i].dtype != "BF16") continue;
    const size_t n = orig[i].bytes.size() / 2;
    std::vector<float> a(n), b(n);
    to_f32(DType::BF16, orig[i].bytes.data(), static_cast<int64_t>(n), a.data());
    to_f32(DType::F16, ts[i].bytes.data(), static_cast<int64_t>(n), b.data());
    for (size_t j = 0; j < n; ++j) {
      double d = std::fabs(static_cast<double>(a[j]) - b[j]);
      max_err = std::max(max_err, d);
      if (d != 0) {
        ++changed;
        EXPECT_LT(std::fabs(a[j]), std::ldexp(1.0, -14)) << orig[i].name;
      }
      ++total;
    }
  }
  EXPECT_LE(max_err, std::ldexp(1.0, -25));
  RecordProperty("f16_changed_weights", std::to_string(changed) + " of " + std::to_string(total));
  auto m = Model::load(make_model(ts));
  EXPECT_EQ(m->weights().wte.dtype, DType::F16);
  const double tol = forward_atol() + 2e-4;
  for (int64_t n : {1, 4, 8}) {
    double d = forward_diff(*m, n);
    EXPECT_LE(d, tol) << n;
    RecordProperty("f16_logit_diff_n" + std::to_string(n), std::to_string(d));
  }
}

// A mix of dtypes within one file (F32 norms, F16 attention, BF16 rest).
TEST(LoaderDtypes, MixedDtypes) {
  auto f32 = converted(DType::F32), f16 = converted(DType::F16), ts = tiny_tensors();
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i].name.find("norm") != std::string::npos) ts[i] = f32[i];
    if (ts[i].name.find("attn") != std::string::npos) ts[i] = f16[i];
  }
  auto m = Model::load(make_model(ts));
  EXPECT_LE(forward_diff(*m, 4), forward_atol() + 2e-4);
}

// A data section that starts at an odd address (a header length that is not a
// multiple of 8 is legal): the views are misaligned for their element type.
TEST(LoaderDtypes, UnalignedDataSection) {
  const double atol = forward_atol();
  for (DType d : {DType::BF16, DType::F32}) {
    auto ts = d == DType::BF16 ? tiny_tensors() : converted(DType::F32);
    auto m = Model::load(make_model(ts, json::object(), /*header_pad=*/1));
    EXPECT_LE(forward_diff(*m, 4), atol) << dtype_name(d);
  }
}

// ---- shards ----

// Writes `ts` into `parts` shards (tensor i goes to shard i * parts / n) with
// an index, into a fresh model dir.
std::string make_sharded(const std::vector<Owned>& ts, int parts, json* index_out = nullptr) {
  std::string dir = test::temp_dir();
  fs::copy_file(tiny_dir() + "/config.json", dir + "/config.json");
  std::vector<std::vector<Owned>> shards(static_cast<size_t>(parts));
  json wm = json::object();
  uint64_t total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    size_t s = i * static_cast<size_t>(parts) / ts.size();
    shards[s].push_back(ts[i]);
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05d.safetensors", s + 1, parts);
    wm[ts[i].name] = name;
    total += ts[i].bytes.size();
  }
  for (int s = 0; s < parts; ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, parts);
    write_raw(dir + "/" + name, shards[static_cast<size_t>(s)]);
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", wm}};
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
  if (index_out) *index_out = index;
  return dir;
}

TEST(LoaderShards, ThreeShardsMatchGolden) {
  json index;
  const std::string dir = make_sharded(tiny_tensors(), 3, &index);
  std::set<std::string> files;
  for (auto& [k, v] : index["weight_map"].items()) files.insert(v.get<std::string>());
  ASSERT_EQ(files.size(), 3u);
  auto m = Model::load(dir);
  EXPECT_LE(forward_diff(*m, 4), forward_atol());
  EXPECT_LE(forward_diff(*m, 8), forward_atol());
  // The golden 2-shard copy gives the same weights as the single file.
  auto single = Model::load(tiny_dir());
  auto two = Model::load(test::golden_dir() + "/model/tiny-sharded");
  EXPECT_EQ(std::memcmp(single->weights().core[2].fc.data, two->weights().core[2].fc.data, single->weights().core[2].fc.nbytes), 0);
  EXPECT_EQ(single->weight_bytes(), two->weight_bytes());
}

TEST(LoaderShards, ShardNamedInIndexButAbsent) {
  json index;
  const std::string dir = make_sharded(tiny_tensors(), 3, &index);
  fs::remove(dir + "/model-00002-of-00003.safetensors");
  // Some tensor that the index places in shard 2.
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); },
                         {dir + "/model.safetensors.index.json", "model-00002-of-00003.safetensors", "does not exist", "'"}));
}

TEST(LoaderShards, IndexProblems) {
  json index;
  const std::string dir = make_sharded(tiny_tensors(), 3, &index);
  const std::string ipath = dir + "/model.safetensors.index.json";
  auto write_index = [&](const std::string& text) { std::ofstream(ipath, std::ios::trunc) << text; };
  auto expect = [&](const std::string& text, std::initializer_list<std::string> parts) {
    write_index(text);
    EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, parts)) << text;
  };
  expect("{\"weight_map\": ", {ipath, "JSON"});
  expect("[]", {ipath, "weight_map"});
  expect("{\"metadata\": {}}", {ipath, "weight_map"});
  expect("{\"weight_map\": []}", {ipath, "weight_map"});
  expect("{\"weight_map\": {}}", {ipath, "empty"});
  expect("{\"weight_map\": {\"transformer.wte.weight\": 3}}", {ipath, "'transformer.wte.weight'"});
  expect("{\"weight_map\": {\"transformer.wte.weight\": \"../tiny/model.safetensors\"}}", {ipath, "'transformer.wte.weight'", "invalid file"});
  expect("{\"weight_map\": {\"transformer.wte.weight\": \"\"}}", {ipath, "'transformer.wte.weight'", "invalid file"});
  expect("{\"weight_map\": {\"transformer.wte.weight\": \"..\"}}", {ipath, "'transformer.wte.weight'", "invalid file"});
  // The index names a tensor its shard does not hold.
  json j = index;
  j["weight_map"]["transformer.not_there"] = "model-00001-of-00003.safetensors";
  expect(j.dump(), {dir + "/model-00001-of-00003.safetensors", "'transformer.not_there'", "not in this shard"});
  // A tensor the index places in the wrong shard.
  j = index;
  j["weight_map"]["transformer.wte.weight"] = "model-00001-of-00003.safetensors";
  expect(j.dump(), {"model-00001-of-00003.safetensors", "'transformer.wte.weight'"});
  // A tensor missing from the index (and so from the model).
  j = index;
  j["weight_map"].erase("transformer.adapter.weight");
  expect(j.dump(), {ipath, "'transformer.adapter.weight'", "missing"});
  // A corrupt shard is named by its own path.
  write_index(index.dump());
  std::ofstream(dir + "/model-00003-of-00003.safetensors", std::ios::trunc) << "garbage!garbage";
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir + "/model-00003-of-00003.safetensors"}));
}

TEST(LoaderShards, TensorInTwoShards) {
  json index;
  auto ts = tiny_tensors();
  const std::string dir = make_sharded(ts, 2, &index);
  // Rewrite shard 2 with an extra copy of a tensor that the index puts in shard 1.
  std::vector<Owned> second;
  for (auto& t : ts)
    if (index["weight_map"][t.name] == "model-00002-of-00002.safetensors") second.push_back(t);
  std::string in_first;
  for (auto& [k, v] : index["weight_map"].items())
    if (v == "model-00001-of-00002.safetensors") in_first = k;
  second.push_back(*find(ts, in_first));
  write_raw(dir + "/model-00002-of-00002.safetensors", second);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {"model-00002-of-00002.safetensors", "'" + in_first + "'", "another shard"}));
}

TEST(LoaderShards, ShapeErrorInShardNamesTensor) {
  auto ts = tiny_tensors();
  find(ts, "transformer.core_block.1.attn.proj.weight")->shape = {32, 128};
  const std::string dir = make_sharded(ts, 3);
  EXPECT_TRUE(ThrowsWith([&] { Model::load(dir); }, {dir, "'transformer.core_block.1.attn.proj.weight'", "[32, 128]"}));
}

}  // namespace
}  // namespace huginn
