// End-to-end tests of `huginn tokenize` / `huginn detokenize`.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace huginn {
namespace {

using json = nlohmann::json;
using test::run_cli;

std::string dir(const char* name) { return test::golden_dir() + "/tokenizer/" + name; }

TEST(TokenizeCli, TextMatchesGolden) {
  auto r = run_cli({"tokenize", "-m", dir("huginn-like"), "--text", "Hello world<|end_turn|>"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  std::vector<int32_t> ids = j["ids"];
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), 65508);
  EXPECT_EQ(j["tokens"].back(), "<|end_turn|>");
  EXPECT_EQ(j["tokens"].size(), ids.size());
}

TEST(TokenizeCli, AddSpecialAndFile) {
  std::string tmp = test::temp_dir() + "/in.txt";
  { std::ofstream(tmp) << "hi"; }
  auto plain = run_cli({"tokenize", "-m", dir("llama3-like"), "--file", tmp});
  auto special = run_cli({"tokenize", "-m", dir("llama3-like"), "--file", tmp, "--add-special"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(special.exit_code, 0) << special.err;
  std::vector<int32_t> a = json::parse(plain.out)["ids"], b = json::parse(special.out)["ids"];
  ASSERT_EQ(b.size(), a.size() + 1);
  EXPECT_EQ(b[0], 12264);
  EXPECT_EQ(json::parse(special.out)["tokens"][0], "<|begin_of_text|>");
}

TEST(TokenizeCli, Detokenize) {
  auto r = run_cli({"detokenize", "-m", dir("huginn-like"), "--ids", "195,169,65504,97"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "\xC3\xA9<|begin_text|>a\n");
  auto s = run_cli({"detokenize", "-m", dir("huginn-like"), "--ids", "195,65504,169", "--skip-special"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out, "\xC3\xA9\n");
}

TEST(TokenizeCli, Errors) {
  auto missing = run_cli({"tokenize", "-m", "/nonexistent/model", "--text", "x"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("/nonexistent/model/tokenizer.json"), std::string::npos) << missing.err;

  auto both = run_cli({"tokenize", "-m", dir("huginn-like"), "--text", "x", "--file", "y"});
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;

  auto none = run_cli({"tokenize", "-m", dir("huginn-like")});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("exactly one of --text or --file"), std::string::npos) << none.err;

  auto bad = run_cli({"detokenize", "-m", dir("huginn-like"), "--ids", "1,x,3"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("'x' is not an integer"), std::string::npos) << bad.err;

  auto empty = run_cli({"detokenize", "-m", dir("huginn-like"), "--ids", "1,,3"});
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_NE(empty.err.find("is not an integer"), std::string::npos) << empty.err;

  auto badfile = run_cli({"tokenize", "-m", dir("huginn-like"), "--file", "/nonexistent/in.txt"});
  EXPECT_NE(badfile.exit_code, 0);
  EXPECT_NE(badfile.err.find("/nonexistent/in.txt"), std::string::npos) << badfile.err;
}

}  // namespace
}  // namespace huginn
