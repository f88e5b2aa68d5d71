// Every case of golden/tokenizer/expected.*.json, decode_cases and the chat
// encodings, compared exactly.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "huginn/tokenizer.h"
#include "test_util.h"

namespace huginn {
namespace {

using json = nlohmann::json;

std::string tok_dir() { return test::golden_dir() + "/tokenizer"; }

const Tokenizer& get(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, Tokenizer::load(tok_dir() + "/" + name + "/tokenizer.json")).first;
  return it->second;
}

const json& expected(const std::string& name) {
  static std::map<std::string, json> cache;
  auto it = cache.find(name);
  if (it == cache.end())
    it = cache.emplace(name, json::parse(test::read_file(tok_dir() + "/expected." + name + ".json"))).first;
  return it->second;
}

// corpus id -> text
const std::string& text_of(const json& c) {
  static std::map<std::string, std::string> corpus = [] {
    std::map<std::string, std::string> m;
    for (const auto& e : json::parse(test::read_file(tok_dir() + "/corpus.json")))
      m[e["id"].get<std::string>()] = e["text"].get<std::string>();
    return m;
  }();
  return corpus.at(c["id"].get<std::string>());
}

std::vector<std::string> tokens_of(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.id_to_token(id));
  return out;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, IdsAndTokens) {
  const Tokenizer& t = get(GetParam());
  for (const auto& c : expected(GetParam())["cases"]) {
    SCOPED_TRACE(c["id"].get<std::string>());
    const std::string& text = text_of(c);
    auto ids = t.encode(text, false);
    ASSERT_EQ(ids, c["ids"].get<std::vector<int32_t>>());
    ASSERT_EQ(tokens_of(t, ids), c["tokens"].get<std::vector<std::string>>());
    auto ids_sp = t.encode(text, true);
    ASSERT_EQ(ids_sp, c["ids_with_special"].get<std::vector<int32_t>>());
    ASSERT_EQ(tokens_of(t, ids_sp), c["tokens_with_special"].get<std::vector<std::string>>());
  }
}

TEST_P(Golden, Decode) {
  const Tokenizer& t = get(GetParam());
  for (const auto& c : expected(GetParam())["cases"]) {
    SCOPED_TRACE(c["id"].get<std::string>());
    auto ids = c["ids"].get<std::vector<int32_t>>();
    auto ids_sp = c["ids_with_special"].get<std::vector<int32_t>>();
    EXPECT_EQ(t.decode(ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(t.decode(ids, true), c["decoded_skip_special"].get<std::string>());
    EXPECT_EQ(t.decode(ids_sp, false), c["decoded_with_special"].get<std::string>());
    EXPECT_EQ(t.decode(ids_sp, true), c["decoded_with_special_skip_special"].get<std::string>());
    EXPECT_EQ(t.decode(ids, false) == text_of(c), c["roundtrip"].get<bool>());
  }
}

TEST_P(Golden, DecodeCases) {
  const Tokenizer& t = get(GetParam());
  for (const auto& c : expected(GetParam())["decode_cases"]) {
    SCOPED_TRACE(c["note"].get<std::string>());
    auto ids = c["ids"].get<std::vector<int32_t>>();
    for (size_t i = 0; i < ids.size(); ++i) {
      const auto& want = c["tokens"][i];
      EXPECT_EQ(t.id_to_token(ids[i]), want.is_null() ? "" : want.get<std::string>());
      if (want.is_null()) {
        EXPECT_FALSE(static_cast<size_t>(ids[i]) < t.vocab_size() && !t.id_to_token(ids[i]).empty());
      }
    }
    EXPECT_EQ(t.decode(ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(t.decode(ids, true), c["decoded_skip_special"].get<std::string>());
    // Streaming gives the same text.
    for (bool skip : {false, true}) {
      StreamDecoder sd(t, skip);
      std::string streamed;
      for (int32_t id : ids) streamed += sd.push(id);
      streamed += sd.flush();
      EXPECT_EQ(streamed, c[skip ? "decoded_skip_special" : "decoded"].get<std::string>());
    }
  }
}

TEST_P(Golden, PreTokensOffsetsWordIds) {
  const Tokenizer& t = get(GetParam());
  for (const auto& c : expected(GetParam())["cases"]) {
    SCOPED_TRACE(c["id"].get<std::string>());
    const std::string& text = text_of(c);
    Encoding e = t.encode_detailed(text, false);
    std::vector<std::string> pieces;
    std::vector<std::vector<size_t>> piece_offsets;
    for (auto [a, b] : e.pieces) {
      pieces.push_back(text.substr(a, b - a));
      piece_offsets.push_back({a, b});
    }
    ASSERT_EQ(pieces, c["pre_tokens"].get<std::vector<std::string>>());
    ASSERT_EQ(piece_offsets, c["pre_token_offsets_utf8"].get<std::vector<std::vector<size_t>>>());
    std::vector<std::vector<size_t>> offs;
    for (auto [a, b] : e.offsets) offs.push_back({a, b});
    ASSERT_EQ(offs, c["offsets_utf8"].get<std::vector<std::vector<size_t>>>());
    std::vector<int32_t> words;
    for (const auto& w : c["word_ids"]) words.push_back(w.is_null() ? -1 : w.get<int32_t>());
    ASSERT_EQ(e.word_ids, words);
    // With special tokens: post-processor tokens have offsets (0,0), word -1.
    Encoding es = t.encode_detailed(text, true);
    ASSERT_EQ(es.ids, c["ids_with_special"].get<std::vector<int32_t>>());
    ASSERT_EQ(es.offsets.size(), es.ids.size());
    ASSERT_EQ(es.word_ids.size(), es.ids.size());
  }
}

TEST_P(Golden, StreamingMatchesDecode) {
  const Tokenizer& t = get(GetParam());
  for (const auto& c : expected(GetParam())["cases"]) {
    SCOPED_TRACE(c["id"].get<std::string>());
    auto ids = c["ids_with_special"].get<std::vector<int32_t>>();
    StreamDecoder sd(t);
    std::string streamed;
    for (int32_t id : ids) {
      std::string piece = sd.push(id);
      // never half a character
      EXPECT_TRUE(piece.empty() || (static_cast<unsigned char>(piece.back()) < 0x80 ||
                                    piece.size() >= 2));
      streamed += piece;
    }
    streamed += sd.flush();
    EXPECT_EQ(streamed, c["decoded_with_special"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Golden, ::testing::Values("huginn-like", "llama3-like", "huginn-hub-like"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(GoldenChat, RenderedConversationsEncode) {
  for (auto [file, name] : {std::pair<const char*, const char*>{"chat.json", "huginn-like"},
                            {"chat.huginn-hub-like.json", "huginn-hub-like"}}) {
    const Tokenizer& t = get(name);
    json chat = json::parse(test::read_file(tok_dir() + "/" + file));
    for (const auto& conv : chat["conversations"]) {
      SCOPED_TRACE(std::string(file) + ": " + conv["id"].get<std::string>());
      auto ids = t.encode(conv["rendered"].get<std::string>(), false);
      EXPECT_EQ(ids, conv["ids"].get<std::vector<int32_t>>());
      EXPECT_EQ(tokens_of(t, ids), conv["tokens"].get<std::vector<std::string>>());
      if (conv.contains("ids_jinja2")) {
        EXPECT_EQ(t.encode(conv["rendered_jinja2"].get<std::string>(), false),
                  conv["ids_jinja2"].get<std::vector<int32_t>>());
      }
    }
  }
}

TEST(GoldenVocab, SizesAndSpecials) {
  const Tokenizer& h = get("huginn-like");
  EXPECT_EQ(h.vocab_size(), 65536u);
  EXPECT_EQ(h.token_to_id("<|begin_text|>"), 65504);
  EXPECT_TRUE(h.is_special(65504));
  EXPECT_FALSE(h.is_special(27110));  // Huginn: ordinary entry
  EXPECT_EQ(h.id_to_token(27110), "Huginn");
  EXPECT_EQ(h.id_to_token(70000), "");
  EXPECT_EQ(h.id_to_token(-1), "");
  const Tokenizer& l = get("llama3-like");
  EXPECT_EQ(l.vocab_size(), 12272u);
  EXPECT_EQ(l.token_to_id("<tool_call>"), 12270);
  EXPECT_FALSE(l.is_special(12270));
  EXPECT_TRUE(l.is_special(12269));
  EXPECT_EQ(l.token_to_id("nope-not-a-token"), std::nullopt);
}

}  // namespace
}  // namespace huginn
