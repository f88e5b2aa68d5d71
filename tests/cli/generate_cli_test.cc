// `huginn generate` and `huginn chat` end to end: the golden generate_* and
// adaptive_* cases through --ids --json (same ids and steps per token as the
// reference), text prompts and chat with a small byte-level tokenizer, and
// the error message of every bad option.
//
// Every run uses -t 1: ThreadPool (src/compute/cpu/thread_pool.cc) can hang
// in its destructor when a worker thread first runs after the pool is
// already being destroyed (it reads `wake_` only then and waits for a change
// that never comes); on a loaded machine a short CLI run hits that. Reported
// to the engine owner; with one thread there are no workers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <algorithm>

#include "test_util.h"

namespace huginn {
namespace {

using nlohmann::json;
using test::run_cli;

std::string golden_model(const std::string& name) { return test::golden_dir() + "/model/" + name; }

std::string ids_arg(const json& ids) {
  std::string s;
  for (const auto& v : ids) s += (s.empty() ? "" : ",") + std::to_string(v.get<int>());
  return s;
}

// The CLI flags of a golden case.
std::vector<std::string> case_args(const std::string& model, const json& root, const json& c) {
  std::vector<std::string> a = {"generate", "-m", golden_model(model), "--ids", ids_arg(root.at("prompt_ids")),
                                "--init-scale", "0", "-n", "24", "--json", "-t", "1",
                                "--cache-strategy", c.at("cache_lookup_strategy").get<std::string>()};
  if (c.contains("criterion")) {
    std::ostringstream thr;
    thr.precision(17);
    thr << c.at("exit_threshold").get<double>();
    const std::vector<std::string> more = {"--criterion", c.at("criterion").get<std::string>(),
                                           "--exit-threshold", thr.str(),
                                           "--steps", std::to_string(c.at("max_steps").get<int>()),
                                           "--min-steps", std::to_string(c.at("min_steps").get<int>()),
                                           "--check-every", std::to_string(c.at("check_criterion_every_n_steps").get<int>())};
    a.insert(a.end(), more.begin(), more.end());
  } else {
    a.push_back("--steps");
    a.push_back(std::to_string(c.at("num_steps").get<int>()));
  }
  if (c.value("continuous_compute", false)) a.push_back("--continuous");
  return a;
}

class GoldenCli : public testing::TestWithParam<std::string> {};

TEST_P(GoldenCli, EveryGenerationCase) {
  const json root = json::parse(test::read_file(golden_model(GetParam()) + "/cases.json"));
  int n = 0;
  for (const auto& [name, c] : root.at("cases").items()) {
    if (name.rfind("generate_", 0) != 0 && name.rfind("adaptive_", 0) != 0) continue;
    SCOPED_TRACE(GetParam() + " " + name);
    auto r = run_cli(case_args(GetParam(), root, c));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json out = json::parse(r.out);
    EXPECT_EQ(out.at("ids"), c.at("generated_ids"));
    if (c.contains("steps_per_token")) {
      EXPECT_EQ(out.at("steps"), c.at("steps_per_token"));
    } else {
      for (const auto& s : out.at("steps")) EXPECT_EQ(s, c.at("num_steps"));
    }
    EXPECT_TRUE(out.at("text").is_null());  // the golden dirs have no tokenizer.json
    ++n;
  }
  EXPECT_EQ(n, 12);
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenCli, testing::Values("tiny", "odd"));

// A model dir = the tiny golden model + a byte-level BPE tokenizer (ids 0..255
// are bytes, Huginn's special tokens at 256..261), so every id fits the
// model's 512-token vocabulary.
std::string byte_level_model_dir() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = test::temp_dir();
  namespace fs = std::filesystem;
  for (const char* f : {"config.json", "model.safetensors", "generation_config.json"})
    fs::create_symlink(golden_model("tiny") + "/" + f, dir + "/" + f);
  // GPT-2's byte -> printable character map.
  json vocab = json::object();
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = direct ? b : 256 + extra++;
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
    vocab[s] = b;
  }
  json added = json::array();
  int id = 256;
  for (const char* t : {"<|begin_text|>", "<|end_text|>", "<|begin_header|>", "<|end_header|>", "<|end_turn|>", "<|pad|>"})
    added.push_back({{"id", id++}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  json tok = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
              {"normalizer", nullptr}, {"pre_tokenizer", bl}, {"post_processor", nullptr}, {"decoder", bl},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                         {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                         {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", vocab}, {"merges", json::array()}}}};
  std::ofstream(dir + "/tokenizer.json") << tok.dump();
  return dir;
}

TEST(GenerateCli, TextPromptStreamsAndMatchesIds) {
  const std::string dir = byte_level_model_dir();
  auto j = run_cli({"generate", "-m", dir, "-t", "1", "--prompt", "Hi there", "--init-scale", "0", "-n", "12", "--json", "--steps", "4"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json out = json::parse(j.out);
  ASSERT_EQ(out.at("ids").size(), 12u);
  ASSERT_TRUE(out.at("text").is_string());
  // "Hi there" is 8 bytes -> ids 72,105,32,116,104,101,114,101 (no post-processor, so no BOS).
  auto same = run_cli({"generate", "-m", dir, "-t", "1", "--ids", "72,105,32,116,104,101,114,101", "--init-scale", "0", "-n", "12",
                       "--json", "--steps", "4"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(json::parse(same.out).at("ids"), out.at("ids"));
  // Streaming prints the same text, then a newline.
  auto s = run_cli({"generate", "-m", dir, "-t", "1", "--prompt", "Hi there", "--init-scale", "0", "-n", "12", "--steps", "4"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out, out.at("text").get<std::string>() + "\n");
}

TEST(GenerateCli, SamplingIsSeeded) {
  const std::string dir = golden_model("tiny");
  std::vector<std::string> base = {"generate", "-m", dir, "-t", "1", "--ids", "1,2,3", "-n", "16", "--json", "--steps", "2",
                                   "--temp", "1.5", "--top-k", "40", "--top-p", "0.95", "--min-p", "0.01",
                                   "--repeat-penalty", "1.1"};
  auto a = base, b = base, c = base;
  a.insert(a.end(), {"--seed", "5"});
  b.insert(b.end(), {"--seed", "5"});
  c.insert(c.end(), {"--seed", "6"});
  auto ra = run_cli(a), rb = run_cli(b), rc = run_cli(c);
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  EXPECT_EQ(ra.out, rb.out);
  EXPECT_NE(ra.out, rc.out);
}

TEST(GenerateCli, StreamsIdsWithoutTokenizer) {
  auto r = run_cli({"generate", "-m", golden_model("tiny"), "-t", "1", "--ids", "1,2,3", "-n", "3", "--steps", "2", "--init-scale", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = run_cli({"generate", "-m", golden_model("tiny"), "-t", "1", "--ids", "1,2,3", "-n", "3", "--steps", "2", "--init-scale", "0", "--json"});
  auto ids = json::parse(j.out).at("ids");
  EXPECT_EQ(r.out, std::to_string(ids[0].get<int>()) + " " + std::to_string(ids[1].get<int>()) + " " +
                       std::to_string(ids[2].get<int>()) + "\n");
}

TEST(GenerateCli, ChatPipedStdin) {
  const std::string dir = byte_level_model_dir();
  auto r = run_cli({"chat", "-m", dir, "-t", "1", "--system", "Be brief.", "-n", "6", "--steps", "2", "--init-scale", "0", "--stats"},
                   "hello\n/steps 3\nwhat is 2+2?\n/bogus\n/steps x\n/reset\nhi again\n/quit\nnever read\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Three replies, each one line (newline-terminated); commands answer on stderr.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
  EXPECT_NE(r.err.find("recurrent steps per token: 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unknown command /bogus"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("usage: /steps N"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("conversation reset"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("steps/token"), std::string::npos) << r.err;
  // EOF ends the chat cleanly.
  auto eof = run_cli({"chat", "-m", dir, "-t", "1", "-n", "4", "--steps", "2"}, "hello");
  EXPECT_EQ(eof.exit_code, 0) << eof.err;
  EXPECT_EQ(std::count(eof.out.begin(), eof.out.end(), '\n'), 1);
  auto empty = run_cli({"chat", "-m", dir, "-t", "1", "-n", "4", "--steps", "2"}, "");
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(empty.out, "");
}

TEST(GenerateCli, ChatNeedsTokenizer) {
  auto r = run_cli({"chat", "-m", golden_model("tiny")}, "hi\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;
}

struct BadCase {
  std::vector<std::string> extra;
  std::string message;
};

TEST(GenerateCli, BadOptions) {
  const std::string m = golden_model("tiny");
  const std::vector<BadCase> cases = {
      {{"--ids", "1,2", "--criterion", "entropy"}, "unknown exit criterion 'entropy'"},
      {{"--ids", "1,2", "--cache-strategy", "latest-m5"}, "unknown cache strategy 'latest-m5'"},
      {{"--ids", "1,2", "--steps", "0"}, "--steps must be a positive integer"},
      {{"--ids", "1,2", "--steps", "-3"}, "--steps must be a positive integer"},
      {{"--ids", "1,2", "--top-p", "0"}, "--top-p must be in (0, 1]"},
      {{"--ids", "1,2", "--top-p", "1.5"}, "--top-p must be in (0, 1]"},
      {{"--ids", "1,2", "--temp", "-0.5"}, "--temp must be >= 0"},
      {{"--ids", "1,2", "--top-k", "-1"}, "--top-k must be >= 0"},
      {{"--ids", "1,2", "--min-p", "1.5"}, "--min-p must be in [0, 1]"},
      {{"--ids", "1,2", "--min-p", "-0.1"}, "--min-p must be in [0, 1]"},
      {{"--ids", "1,2", "--repeat-penalty", "0"}, "--repeat-penalty must be > 0"},
      {{"--ids", "1,2", "--greedy", "--temp", "0.5"}, "--greedy cannot be combined"},
      {{"--ids", "1,2", "--check-every", "0", "--criterion", "kl"}, "--check-every must be >= 1"},
      {{"--ids", "1,2", "--min-steps", "2"}, "need --criterion"},
      {{"--ids", "1,2", "--bogus"}, "--bogus"},
      {{"--ids", "1,2", "--prompt", "hi"}, "either --prompt or --ids, not both"},
      {{}, "give the prompt with --prompt TEXT or --ids"},
      {{"--prompt", "hi"}, "has no tokenizer.json"},
      {{"--ids", "1,x"}, "'x' is not an integer"},
      {{"--ids", "1,999999"}, "outside the vocabulary"},
      {{"--ids", "1,2", "--stop", "x"}, "stop strings need a tokenizer"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"generate", "-m", m, "-t", "1", "-n", "2", "--steps", "2"};
    if (std::find(c.extra.begin(), c.extra.end(), "--steps") != c.extra.end()) args.resize(7);
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    auto r = run_cli(args);
    std::string joined;
    for (const auto& a : c.extra) joined += a + " ";
    EXPECT_NE(r.exit_code, 0) << joined;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << joined << "\nstderr: " << r.err;
    EXPECT_EQ(r.out, "") << joined;
  }
  // The chat command shares the checks.
  auto r = run_cli({"chat", "-m", m, "-t", "1", "--top-p", "2"}, "hi\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--top-p must be in (0, 1]"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace huginn
