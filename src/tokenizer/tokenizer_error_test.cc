// Load-time errors: each names the source and the problem.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "huginn/error.h"
#include "huginn/tokenizer.h"

namespace huginn {
namespace {

using json = nlohmann::json;

json base() {
  return {{"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

// Expects from_json(text) to throw a huginn::Error whose message contains
// every one of `parts`.
void expect_error_text(const std::string& text, std::initializer_list<std::string> parts) {
  try {
    Tokenizer::from_json(text, "my/tokenizer.json");
    ADD_FAILURE() << "no error for " << text.substr(0, 200);
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nwanted: " << p;
  }
}

void expect_error(const json& j, std::initializer_list<std::string> parts) { expect_error_text(j.dump(), parts); }

TEST(LoadErrors, BadJsonAndShape) {
  expect_error_text("{\"model\": ", {"my/tokenizer.json", "invalid JSON"});
  expect_error_text("[1, 2]", {"my/tokenizer.json", "must be a JSON object"});
  json j = base();
  j.erase("model");
  expect_error(j, {"my/tokenizer.json", "missing \"model\""});
}

TEST(LoadErrors, MissingFile) {
  try {
    Tokenizer::load("/nonexistent/dir/tokenizer.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/tokenizer.json"), std::string::npos) << e.what();
  }
}

TEST(LoadErrors, Model) {
  json j = base();
  j["model"]["type"] = "WordPiece";
  expect_error(j, {"my/tokenizer.json", "unsupported model type 'WordPiece'"});
  j = base();
  j["model"].erase("vocab");
  expect_error(j, {"model BPE", "missing \"vocab\""});
  j = base();
  j["model"]["vocab"] = json::array();
  expect_error(j, {"\"vocab\" must be an object"});
  j = base();
  j["model"]["vocab"]["bad"] = -3;
  expect_error(j, {"vocab entry 'bad' has an invalid id"});
  j = base();
  j["model"]["merges"] = {"a c"};
  expect_error(j, {"merge 0", "token 'c' is not in the vocabulary"});
  j = base();
  j["model"]["merges"] = json::array({json::array({"z", "b"})});
  expect_error(j, {"merge 0", "token 'z' is not in the vocabulary"});
  j = base();
  j["model"]["merges"] = {"b a"};
  expect_error(j, {"merged token 'ba' is not in the vocabulary"});
  j = base();
  j["model"]["merges"] = {"ab"};
  expect_error(j, {"merge 0 'ab' is not two tokens"});
  j = base();
  j["model"]["merges"] = {42};
  expect_error(j, {"merge 0 must be"});
  j = base();
  j["model"].erase("merges");
  expect_error(j, {"missing \"merges\""});
  j = base();
  j["model"]["unk_token"] = "<unk>";
  expect_error(j, {"unk_token '<unk>' is not in the vocabulary"});
  j = base();
  j["model"]["dropout"] = 0.1;
  expect_error(j, {"dropout is not supported"});
  j = base();
  j["model"]["vocab"]["dup"] = 0;
  expect_error(j, {"vocab id 0 is used by both"});
}

TEST(LoadErrors, UnsupportedComponents) {
  json j = base();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(j, {"my/tokenizer.json", "unsupported normalizer type 'BertNormalizer'"});
  j = base();
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  expect_error(j, {"my/tokenizer.json", "unsupported pre_tokenizer type 'BertPreTokenizer'"});
  j = base();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "UnicodeScripts"}}}}};
  expect_error(j, {"unsupported pre_tokenizer type 'UnicodeScripts'"});
  j = base();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_error(j, {"my/tokenizer.json", "unsupported post_processor type 'RobertaProcessing'"});
  j = base();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error(j, {"my/tokenizer.json", "unsupported decoder type 'WordPiece'"});
  j = base();
  j["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "CTC"}}}}};
  expect_error(j, {"unsupported decoder type 'CTC'"});
  j = base();
  j["normalizer"] = {{"kind", "NFC"}};
  expect_error(j, {"normalizer has no \"type\""});
}

TEST(LoadErrors, ComponentOptions) {
  json j = base();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error(j, {"my/tokenizer.json", "pre_tokenizer Split", "invalid regex '(unclosed'"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Sideways"}};
  expect_error(j, {"unsupported split behavior 'Sideways'"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", "x"}, {"behavior", "Isolated"}};
  expect_error(j, {"\"pattern\" must be"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "[a[b]]"}}}, {"behavior", "Isolated"}};
  expect_error(j, {"nested character class is not supported"});
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}};
  expect_error(j, {"unsupported prepend_scheme 'sometimes'"});
  j = base();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}}},
                         {"special_tokens", json::object()}};
  expect_error(j, {"missing special token '<s>'"});
  j = base();
  j["added_tokens"] = {{{"id", 5}}};
  expect_error(j, {"added token without a string \"content\""});
  j = base();
  j["added_tokens"] = {{{"content", "x"}, {"special", "yes"}}};
  expect_error(j, {"added token 'x'", "\"special\" must be a boolean"});
  j = base();
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", "a"}}}};
  expect_error(j, {"normalizer Replace", "missing \"content\""});
}

}  // namespace
}  // namespace huginn
