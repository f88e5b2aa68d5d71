// End-to-end tests of `huginn info`, `forward`, `make-random`, `quantize`
// and `bench`, including their error paths.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "golden.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace huginn {
namespace {

using test::run_cli;

std::string tiny() { return test::golden_dir() + "/model/tiny"; }

TEST(CliForward, WritesLogitsAndLatentsMatchingGolden) {
  test::GoldenModel g("tiny");
  std::string ids;
  for (auto id : g.prompt()) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  std::string out = test::temp_dir() + "/out.safetensors";
  auto r = run_cli({"forward", "-m", tiny(), "--ids", ids, "--steps", "4", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  SafetensorsFile f(out);
  const auto& logits = f.header().tensors.at("logits");
  const auto& latents = f.header().tensors.at("latents");
  EXPECT_EQ(logits.shape, (std::vector<int64_t>{17, 512}));
  EXPECT_EQ(latents.shape, (std::vector<int64_t>{17, 64}));
  EXPECT_EQ(logits.dtype, DType::F32);
  auto want = g.array("forward.n4.logits");
  EXPECT_LE(test::max_abs_diff(reinterpret_cast<const float*>(logits.data), want.data.data(), want.data.size()),
            g.atol("forward"));
  auto want_lat = g.array("forward.n4.latent_states");
  EXPECT_LE(test::max_abs_diff(reinterpret_cast<const float*>(latents.data), want_lat.data.data(), want_lat.data.size()),
            g.atol("forward"));
}

TEST(CliForward, InitScaleAndSeedChangeTheResultReproducibly) {
  std::string d = test::temp_dir();
  auto run = [&](const std::string& seed, const std::string& name) {
    auto r = run_cli({"forward", "-m", tiny(), "--ids", "1,2,3", "--steps", "2", "--init-scale", "1", "--seed", seed,
                      "--out", d + "/" + name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return test::read_file(d + "/" + name);
  };
  EXPECT_EQ(run("7", "a"), run("7", "b"));
  EXPECT_NE(run("7", "a"), run("8", "c"));
}

TEST(CliForward, ErrorsNameTheProblem) {
  std::string out = test::temp_dir() + "/o.safetensors";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"forward", "-m", tiny(), "--ids", "1,x,3", "--out", out}, "'x' is not an integer"},
      {{"forward", "-m", tiny(), "--ids", "1,,3", "--out", out}, "is not an integer"},
      {{"forward", "-m", tiny(), "--ids", "1,99999", "--out", out}, "outside the vocabulary"},
      {{"forward", "-m", tiny(), "--ids", "1,2", "--steps", "0", "--out", out}, "--steps must be positive"},
      {{"forward", "-m", tiny(), "--ids", "1,2", "--steps", "-3", "--out", out}, "--steps must be positive"},
      {{"forward", "-m", "/nonexistent/model", "--ids", "1", "--out", out}, "/nonexistent/model does not exist"},
      {{"forward", "-m", tiny(), "--ids", "1", "--out", "/nonexistent/dir/o.safetensors"}, "cannot create"},
      {{"forward", "-m", tiny(), "--ids", "1", "--out", out, "--bogus"}, "--bogus"},
  };
  for (const auto& c : cases) {
    auto r = run_cli(c.args);
    EXPECT_NE(r.exit_code, 0) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << "expected '" << c.message << "' in: " << r.err;
  }
  // A prompt longer than the model's context (block_size 256).
  std::string ids = "1";
  for (int i = 0; i < 300; ++i) ids += ",1";
  auto r = run_cli({"forward", "-m", tiny(), "--ids", ids, "--out", out});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("exceed the model's context of 256"), std::string::npos) << r.err;
}

TEST(CliInfo, PrintsConfigDtypesAndParameterCounts) {
  auto r = run_cli({"info", "-m", tiny()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"\"n_embd\": 64", "BF16", "prelude", "core block", "coda", "embedding (wte)", "420,928"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " in:\n" << r.out;
}

TEST(CliMakeRandom, WritesALoadableCheckpointWithTokenizer) {
  std::string d = test::temp_dir() + "/m";
  auto r = run_cli({"make-random", "--preset", "demo", "--n-embd", "64", "--intermediate-size", "96", "--shards", "2",
                    "-o", d});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("RANDOM-WEIGHT"), std::string::npos);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors.index.json",
                        "model-00001-of-00002.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(std::filesystem::exists(d + "/" + f)) << f;
  auto info = run_cli({"info", "-m", d});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  std::string out = test::temp_dir() + "/f.safetensors";
  auto fw = run_cli({"forward", "-m", d, "--ids", "65504,1,2", "--steps", "2", "--out", out});
  EXPECT_EQ(fw.exit_code, 0) << fw.err;
  auto bad = run_cli({"make-random", "--preset", "huge", "-o", d});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("unknown preset 'huge'"), std::string::npos) << bad.err;
  bad = run_cli({"make-random", "--dtype", "int3", "-o", d});
  EXPECT_NE(bad.err.find("--dtype"), std::string::npos) << bad.err;
}

TEST(CliQuantize, QuantizedDirectoryLoadsInEveryCommand) {
  std::string d = test::temp_dir() + "/q";
  auto r = run_cli({"quantize", "-m", tiny(), "--type", "q8_0", "-o", d});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto info = run_cli({"info", "-m", d});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("Q8_0"), std::string::npos) << info.out;
  auto fw = run_cli({"forward", "-m", d + "/model.gguf", "--ids", "1,2,3", "--steps", "2", "--out", d + "/o.safetensors"});
  EXPECT_EQ(fw.exit_code, 0) << fw.err;
  auto bad = run_cli({"quantize", "-m", tiny(), "--type", "q2_k", "-o", d});
  EXPECT_NE(bad.err.find("unknown weight type 'q2_k'"), std::string::npos) << bad.err;
}

// Q4_SB end to end: rows of 64 fall back to Q4_0 (listed), mlp.proj (rows of
// 160) is Q4_SB, and the directory generates text.
TEST(CliQuantize, Q4SBModelGenerates) {
  std::string d = test::temp_dir() + "/q4sb";
  auto r = run_cli({"quantize", "-m", tiny(), "--type", "q4_sb", "-o", d});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE((r.out + r.err).find("is not a multiple of 160; stored as Q4_0"), std::string::npos) << r.out << r.err;
  auto info = run_cli({"info", "-m", d});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("Q4_SB"), std::string::npos) << info.out;
  auto g = run_cli({"generate", "-m", d, "-t", "2", "--ids", "1,2,3,4,5", "--init-scale", "0", "-n", "6", "--steps", "4", "--json"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(g.out.find("\"finish\":\"length\""), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("\"steps\":[4,4,4,4,4,4]"), std::string::npos) << g.out;
}

TEST(CliCompare, ReportsDriftOfAQuantizedModel) {
  std::string d = test::temp_dir() + "/cmp";
  ASSERT_EQ(run_cli({"quantize", "-m", tiny(), "--type", "q8_0", "-o", d}).exit_code, 0);
  auto same = run_cli({"compare", "-m", tiny(), "--with", tiny(), "--tokens", "5", "--steps", "2", "--json"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(same.out.find("\"max_abs_error\":0,"), std::string::npos) << same.out;
  EXPECT_NE(same.out.find("\"top1_agree\":5,"), std::string::npos) << same.out;
  auto q = run_cli({"compare", "-m", tiny(), "--with", d, "--ids", "1,2,3,4", "--steps", "4"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("compared:  " + d + " (Q8_0)"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("top-1 agreement"), std::string::npos) << q.out;
  EXPECT_EQ(q.out.find("max |logit error|   0 "), std::string::npos) << q.out;  // quantized: not identical
  auto bad = run_cli({"compare", "-m", tiny(), "--with", test::golden_dir() + "/model/odd", "--tokens", "2"});
  EXPECT_NE(bad.err.find("compare: models differ in shape"), std::string::npos) << bad.err;
  bad = run_cli({"compare", "-m", tiny(), "--with", d, "--tokens", "0"});
  EXPECT_NE(bad.err.find("--tokens must be positive"), std::string::npos) << bad.err;
  bad = run_cli({"compare", "-m", tiny(), "--with", d, "--steps", "0"});
  EXPECT_NE(bad.err.find("--steps must be positive"), std::string::npos) << bad.err;
  bad = run_cli({"compare", "-m", tiny(), "--with", d, "--ids", "1,x"});
  EXPECT_NE(bad.err.find("'x' is not an integer"), std::string::npos) << bad.err;
}

TEST(CliBench, ReportsATable) {
  auto r = run_cli({"bench", "-m", tiny(), "--steps", "2", "--prompt", "4", "--gen", "2", "--repeat", "1", "--batch", "1,2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| BF16 | pp4 | 2 | 1 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| BF16 | tg2 | 2 | 2 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak RSS"), std::string::npos);
  // With one round the paired ratio is the table's tokens/s ratio.
  auto tps = [&](const std::string& row) {
    const size_t at = r.out.find(row);
    return at == std::string::npos ? -1.0 : std::stod(r.out.substr(at + row.size()));
  };
  const double t1 = tps("| BF16 | tg2 | 2 | 1 | "), t2 = tps("| BF16 | tg2 | 2 | 2 | ");
  const std::string ratio_line = "batch 2 vs batch 1 (r=2): ";
  const size_t at = r.out.find(ratio_line);
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_NEAR(std::stod(r.out.substr(at + ratio_line.size())), t2 / t1, 0.006) << r.out;
  EXPECT_NE(r.out.find("(median of 1 rounds: "), std::string::npos) << r.out;
  auto hp = run_cli({"bench", "-m", tiny(), "--steps", "1", "--prompt", "2", "--gen", "1", "--repeat", "1", "--hugepages"});
  ASSERT_EQ(hp.exit_code, 0) << hp.err;
  EXPECT_NE(hp.out.find("s copying into huge pages)"), std::string::npos) << hp.out;
  auto bad = run_cli({"bench", "-m", tiny(), "--steps", "0"});
  EXPECT_NE(bad.err.find("--steps: values must be positive"), std::string::npos) << bad.err;
}

// The backend line names the kernels, and the environment switches pick them.
TEST(CliBench, NamesItsKernels) {
  const std::vector<std::string> args = {"bench", "-m", tiny(), "--steps", "1", "--prompt", "2", "--gen", "1", "--repeat", "1"};
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f");
  const bool vnni = avx512 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl");
  // The bench output with one environment switch set (none: nullptr).
  auto run_with = [&](const char* var) {
    if (var) ::setenv(var, "1", 1);
    auto r = run_cli(args);
    if (var) ::unsetenv(var);
    EXPECT_EQ(r.exit_code, 0) << (var ? var : "") << ": " << r.err;
    return r.out;
  };
  std::string out = run_with(nullptr);
  EXPECT_EQ(out.find("avx512f gemm") != std::string::npos, avx512) << out;
  EXPECT_EQ(out.find("avx512vnni int8 gemm") != std::string::npos, vnni) << out;
  EXPECT_EQ(out.find("backend: cpu (avx2+fma+f16c") != std::string::npos, avx2) << out;
  out = run_with("HUGINN_NO_VNNI");
  EXPECT_EQ(out.find("vnni"), std::string::npos) << out;
  EXPECT_EQ(out.find("avx512f gemm") != std::string::npos, avx512) << out;
  out = run_with("HUGINN_NO_AMX");
  EXPECT_EQ(out.find("amx"), std::string::npos) << out;
  EXPECT_EQ(out.find("avx512vnni int8 gemm") != std::string::npos, vnni) << out;
  out = run_with("HUGINN_NO_AVX512");
  EXPECT_EQ(out.find("avx512f"), std::string::npos) << out;
  // Decode prefetches into L2 on Intel CPUs unless told otherwise.
  EXPECT_EQ(run_with(nullptr).find(", L2 prefetch") != std::string::npos, avx2 && __builtin_cpu_is("intel"));
  out = run_with("HUGINN_PREFETCH_L1");
  EXPECT_EQ(out.find("L2 prefetch"), std::string::npos) << out;
  EXPECT_EQ(out.find("backend: cpu (avx2+fma+f16c") != std::string::npos, avx2) << out;
  out = run_with("HUGINN_FORCE_SCALAR");
  EXPECT_NE(out.find("backend: cpu (scalar)"), std::string::npos) << out;
}

}  // namespace
}  // namespace huginn
