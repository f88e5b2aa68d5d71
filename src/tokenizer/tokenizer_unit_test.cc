// Unit tests of the components the golden files do not exercise. Expected
// values follow the Hugging Face `tokenizers` documentation and examples.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "huginn/error.h"
#include "huginn/tokenizer.h"
#include "tokenizer/components.h"
#include "tokenizer/onig_regex.h"

namespace huginn {
namespace {

using json = nlohmann::json;
using tok::Piece;

json base() {
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "BPE"},
            {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}, {" ", 5}, {"x", 6}}},
            {"merges", {"a b", "ab c"}}}}};
}

Tokenizer make(const json& j) { return Tokenizer::from_json(j.dump(), "test.json"); }

std::vector<int32_t> V(std::initializer_list<int32_t> v) { return v; }

// --------------------------------------------------------------- BPE model

TEST(Bpe, MergesInBothForms) {
  json j = base();
  Tokenizer s = make(j);
  j["model"]["merges"] = json::array({json::array({"a", "b"}), json::array({"ab", "c"})});
  Tokenizer p = make(j);
  for (const char* text : {"abc", "cab", "abcab", "bca"}) EXPECT_EQ(s.encode(text), p.encode(text)) << text;
  EXPECT_EQ(s.encode("abc"), V({4}));
  EXPECT_EQ(s.encode("cab"), V({2, 3}));
  EXPECT_EQ(s.encode("x y"), V({6, 5}));  // 'y' has no token and no unk: dropped
}

TEST(Bpe, LowestRankFirstLeftmostOnTies) {
  json j = base();
  j["model"]["vocab"] = {{"a", 0}, {"aa", 1}, {"aaa", 2}};
  j["model"]["merges"] = {"a a", "aa a"};
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("aaa"), V({2}));  // "a a" leftmost -> [aa, a]; then "aa a" -> aaa
  j["model"]["merges"] = {"a a"};
  Tokenizer u = make(j);
  EXPECT_EQ(u.encode("aaa"), V({1, 0}));  // same pair twice: the leftmost merges first
  EXPECT_EQ(u.encode("aaaaa"), V({1, 1, 0}));
}

TEST(Bpe, IgnoreMerges) {
  json j = base();
  j["model"]["vocab"]["ac"] = 7;
  EXPECT_EQ(make(j).encode("ac"), V({0, 2}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(make(j).encode("ac"), V({7}));
  EXPECT_EQ(make(j).encode("abc"), V({4}));
}

TEST(Bpe, ContinuingSubwordPrefixAndUnk) {
  json j = base();
  j["model"] = {{"type", "BPE"},
                {"vocab", {{"[UNK]", 0}, {"a", 1}, {"##b", 2}, {"ab", 3}, {"##a", 4}}},
                {"merges", {"a ##b"}},
                {"continuing_subword_prefix", "##"},
                {"unk_token", "[UNK]"}};
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("ab"), V({3}));
  EXPECT_EQ(t.encode("aa"), V({1, 4}));
  EXPECT_EQ(t.encode("b"), V({0}));  // first character has no prefix: "b" unknown
  EXPECT_EQ(t.encode("azz"), V({1, 0, 0}));
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(make(j).encode("azz"), V({1, 0}));
}

TEST(Bpe, EndOfWordSuffix) {
  json j = base();
  j["model"] = {{"type", "BPE"},
                {"vocab", {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}, {"b", 3}}},
                {"merges", {"a b</w>"}},
                {"end_of_word_suffix", "</w>"}};
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("ab"), V({2}));
  EXPECT_EQ(t.encode("ba"), V({3}));  // "a</w>" unknown, dropped
}

TEST(Bpe, ByteFallbackAndDecoder) {
  json j = base();
  j["model"] = {{"type", "BPE"},
                {"vocab", {{"a", 0}, {"<0xC3>", 1}, {"<0xA9>", 2}, {"<0xFF>", 3}}},
                {"merges", json::array()},
                {"byte_fallback", true}};
  j["decoder"] = {{"type", "ByteFallback"}};
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("a\xC3\xA9"), V({0, 1, 2}));
  EXPECT_EQ(t.decode(V({0, 1, 2})), "a\xC3\xA9");
  EXPECT_EQ(t.decode(V({1, 0})), "\xEF\xBF\xBD" "a");
  // an invalid byte run: one U+FFFD per byte token
  EXPECT_EQ(t.decode(V({1, 3})), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

// --------------------------------------------------------------- added tokens

json with_added(json j, json tokens) {
  j["added_tokens"] = std::move(tokens);
  return j;
}

TEST(AddedTokens, IdsIgnoreWrittenIdAndSpecialSkip) {
  json j = with_added(base(), {{{"id", 99}, {"content", "<s>"}, {"special", true}},
                               {{"id", 98}, {"content", "<t>"}, {"special", false}},
                               {{"id", 1}, {"content", "ab"}, {"special", false}}});
  Tokenizer t = make(j);
  EXPECT_EQ(t.token_to_id("<s>"), 7);  // len(vocab)
  EXPECT_EQ(t.token_to_id("<t>"), 8);
  EXPECT_EQ(t.token_to_id("ab"), 3);  // already in the vocabulary
  EXPECT_EQ(t.vocab_size(), 9u);
  EXPECT_EQ(t.encode("x<s>ab<t>c"), V({6, 7, 3, 8, 2}));
  EXPECT_EQ(t.decode(V({6, 7, 8}), true), "x <t>");  // no decoder: joined with spaces
  EXPECT_EQ(t.decode(V({6, 7, 8}), false), "x <s> <t>");
  EXPECT_TRUE(t.is_special(7));
  EXPECT_FALSE(t.is_special(8));
}

TEST(AddedTokens, LongestMatchOnTie) {
  json j = with_added(base(), {{{"content", "<a>"}, {"special", true}}, {{"content", "<a>b"}, {"special", true}}});
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("<a>bc"), V({8, 2}));
  EXPECT_EQ(t.encode("<a>c"), V({7, 2}));
}

TEST(AddedTokens, SingleWord) {
  json j = with_added(base(), {{{"content", "ab"}, {"special", true}, {"single_word", true}}});
  j["model"]["vocab"] = {{"a", 0}, {"b", 1}, {"c", 2}, {" ", 3}};
  j["model"]["merges"] = json::array();
  Tokenizer t = make(j);
  int32_t ab = *t.token_to_id("ab");
  EXPECT_EQ(t.encode("ab"), V({ab}));
  EXPECT_EQ(t.encode("ab c"), V({ab, 3, 2}));
  EXPECT_EQ(t.encode("cab"), V({2, 0, 1}));
  EXPECT_EQ(t.encode("abc ab"), V({0, 1, 2, 3, ab}));
}

TEST(AddedTokens, LstripRstrip) {
  json j = with_added(base(), {{{"content", "<m>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}}});
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("x  <m>  x"), V({6, 7, 6}));
  Encoding e = t.encode_detailed("x  <m>  x");
  ASSERT_EQ(e.pieces.size(), 3u);
  EXPECT_EQ(e.pieces[1], std::make_pair(size_t{1}, size_t{8}));
  j["added_tokens"][0]["lstrip"] = false;
  EXPECT_EQ(make(j).encode("x  <m>  x"), V({6, 5, 5, 7, 6}));
}

TEST(AddedTokens, NormalizedMatchesNormalizedText) {
  json j = with_added(base(), {{{"content", "AB"}, {"special", false}, {"normalized", true}}});
  j["normalizer"] = {{"type", "Lowercase"}};
  Tokenizer t = make(j);
  int32_t id = *t.token_to_id("AB");
  EXPECT_EQ(t.encode("xABx"), V({6, id, 6}));  // "AB" -> "ab" matches the normalized content
  j["added_tokens"][0]["normalized"] = false;
  Tokenizer raw = make(j);
  EXPECT_EQ(raw.encode("xABx"), V({6, id, 6}));  // raw match before normalizing
  EXPECT_EQ(raw.encode("xabx"), V({6, 3, 6}));   // lowercase text does not match "AB"
}

// --------------------------------------------------------------- normalizers

std::string norm(const json& j, const std::string& s) { return tok::make_normalizer(j, "t")->normalize(s); }

TEST(Normalizers, Unicode) {
  EXPECT_EQ(norm({{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(norm({{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(norm({{"type", "NFKC"}}, "\xEF\xAC\x81 \xE2\x91\xA0"), "fi 1");  // ﬁ ①
  EXPECT_EQ(norm({{"type", "NFKD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(norm({{"type", "NFC"}}, "\xE2\x84\xAB"), "\xC3\x85");  // angstrom sign -> Å
}

TEST(Normalizers, LowercaseReplacePrependStripSequence) {
  EXPECT_EQ(norm({{"type", "Lowercase"}}, "HeLLo \xC3\x80"), "hello \xC3\xA0");
  EXPECT_EQ(norm({{"type", "Lowercase"}}, "\xCE\xA3\xCE\x91\xCE\xA3"), "\xCF\x83\xCE\xB1\xCF\x82");  // ΣΑΣ -> σας
  EXPECT_EQ(norm({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}, "a b"),
            "a\xE2\x96\x81" "b");
  EXPECT_EQ(norm({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}}, "a   b  c d"), "a b c d");
  EXPECT_EQ(norm({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, "hi"), "\xE2\x96\x81hi");
  EXPECT_EQ(norm({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, ""), "");
  EXPECT_EQ(norm({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, " \t hi \xE3\x80\x80\n"), "hi");
  EXPECT_EQ(norm({{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, "  hi  "), "  hi");
  json seq = {{"type", "Sequence"},
              {"normalizers", {{{"type", "NFKC"}}, {{"type", "Lowercase"}}, {{"type", "Strip"}}}}};
  EXPECT_EQ(norm(seq, "  \xEF\xBC\xA1\xEF\xBC\xA2  "), "ab");  // fullwidth AB
}

// --------------------------------------------------------------- pre-tokenizers

std::vector<std::string> pre(const json& j, const std::string& s) {
  std::vector<Piece> pieces(1);
  pieces[0].text = s;
  pieces[0].end = s.size();
  tok::make_pre_tokenizer(j, "t")->apply(pieces);
  std::vector<std::string> out;
  for (const auto& p : pieces) out.push_back(p.text);
  return out;
}

using S = std::vector<std::string>;

TEST(PreTokenizers, SplitBehaviors) {
  // Examples of the tokenizers documentation ("the-final--countdown").
  auto split = [](const char* beh, bool invert = false) {
    return json{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", beh}, {"invert", invert}};
  };
  const std::string s = "the-final--countdown";
  EXPECT_EQ(pre(split("Removed"), s), S({"the", "final", "countdown"}));
  EXPECT_EQ(pre(split("Isolated"), s), S({"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pre(split("MergedWithPrevious"), s), S({"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pre(split("MergedWithNext"), s), S({"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pre(split("Contiguous"), s), S({"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(pre(split("Removed", true), s), S({"-", "-", "-"}));
  json re = {{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "Removed"}, {"invert", true}};
  EXPECT_EQ(pre(re, "ab12c345"), S({"12", "345"}));
}

TEST(PreTokenizers, WhitespacePunctuationDigits) {
  EXPECT_EQ(pre({{"type", "Whitespace"}}, "Hey friend!     How are you?!?"),
            S({"Hey", "friend", "!", "How", "are", "you", "?!?"}));
  EXPECT_EQ(pre({{"type", "WhitespaceSplit"}}, "Hey friend!     How"), S({"Hey", "friend!", "How"}));
  EXPECT_EQ(pre({{"type", "Punctuation"}}, "Hey, friend!"), S({"Hey", ",", " friend", "!"}));
  EXPECT_EQ(pre({{"type", "Punctuation"}, {"behavior", "Removed"}}, "a,b"), S({"a", "b"}));
  EXPECT_EQ(pre({{"type", "Digits"}, {"individual_digits", false}}, "abc123d4"), S({"abc", "123", "d", "4"}));
  EXPECT_EQ(pre({{"type", "Digits"}, {"individual_digits", true}}, "abc123d4"), S({"abc", "1", "2", "3", "d", "4"}));
}

TEST(PreTokenizers, ByteLevel) {
  // GPT-2: "Hello world!" with the regex, no prefix space.
  EXPECT_EQ(pre({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}, "Hello world!"),
            S({"Hello", "\xC4\xA0world", "!"}));
  EXPECT_EQ(pre({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, "Hello"),
            S({"\xC4\xA0Hello"}));
  EXPECT_EQ(pre({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, "a b\n"),
            S({"a\xC4\xA0" "b\xC4\x8A"}));
  EXPECT_EQ(pre({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}, "I'm  fine"),
            S({"I", "'m", "\xC4\xA0", "\xC4\xA0" "fine"}));
}

TEST(PreTokenizers, MetaspaceAndSequence) {
  const std::string m = "\xE2\x96\x81";
  EXPECT_EQ(pre({{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}, {"split", true}}, "Hey friend"),
            S({m + "Hey", m + "friend"}));
  EXPECT_EQ(pre({{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "never"}, {"split", true}}, "Hey friend"),
            S({"Hey", m + "friend"}));
  EXPECT_EQ(pre({{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "first"}, {"split", false}}, "Hey friend"),
            S({m + "Hey" + m + "friend"}));
  EXPECT_EQ(pre({{"type", "Metaspace"}, {"replacement", m}, {"add_prefix_space", true}}, "a"), S({m + "a"}));
  json seq = {{"type", "Sequence"},
              {"pretokenizers", {{{"type", "WhitespaceSplit"}}, {{"type", "Digits"}, {"individual_digits", true}}}}};
  EXPECT_EQ(pre(seq, "ab12 c3"), S({"ab", "1", "2", "c", "3"}));
}

TEST(PreTokenizers, OffsetsThroughPipeline) {
  json j = base();
  j["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  Encoding e = make(j).encode_detailed("ab  c");
  ASSERT_EQ(e.pieces.size(), 2u);
  EXPECT_EQ(e.pieces[1], std::make_pair(size_t{4}, size_t{5}));
  EXPECT_EQ(e.ids, V({3, 2}));
  EXPECT_EQ(e.word_ids, V({0, 1}));
}

// --------------------------------------------------------------- decoders

std::vector<std::string> dec(const json& j, std::vector<std::string> toks) {
  tok::make_decoder(j, "t")->decode_chain(toks);
  return toks;
}

TEST(Decoders, All) {
  const std::string m = "\xE2\x96\x81";
  EXPECT_EQ(dec({{"type", "ByteLevel"}}, {"\xC4\xA0hello", "\xC4\xA0w", "\xC3\x83"}), S({" hello w\xEF\xBF\xBD"}));
  EXPECT_EQ(dec({{"type", "ByteFallback"}}, {"<0x61>", "b", "<0xC3>", "<0xA9>", "c", "<0xFF>"}),
            S({"a", "b", "\xC3\xA9", "c", "\xEF\xBF\xBD"}));
  // a run of byte tokens that is invalid as a whole: one U+FFFD per token
  EXPECT_EQ(dec({{"type", "ByteFallback"}}, {"<0xC3>", "<0xA9>", "<0xFF>"}),
            S({"\xEF\xBF\xBD", "\xEF\xBF\xBD", "\xEF\xBF\xBD"}));
  EXPECT_EQ(dec({{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}}, {m + "a", "b" + m}), S({" a", "b "}));
  EXPECT_EQ(dec({{"type", "Fuse"}}, {"a", "b", "c"}), S({"abc"}));
  EXPECT_EQ(dec({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}, {" a", "  b", "c "}),
            S({"a", " b", "c "}));
  EXPECT_EQ(dec({{"type", "Strip"}, {"content", "x"}, {"start", 0}, {"stop", 2}}, {"axxx", "xx"}), S({"ax", ""}));
  EXPECT_EQ(dec({{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}}, {m + "Hey", m + "friend"}),
            S({"Hey", " friend"}));
  EXPECT_EQ(dec({{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "never"}}, {m + "Hey"}), S({" Hey"}));
  // Llama-2 style chain.
  json llama = {{"type", "Sequence"},
                {"decoders",
                 {{{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}},
                  {{"type", "ByteFallback"}},
                  {{"type", "Fuse"}},
                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  EXPECT_EQ(dec(llama, {m + "Hey", m, "<0xC3>", "<0xA9>"}), S({"Hey \xC3\xA9"}));
}

// --------------------------------------------------------------- post-processors

TEST(PostProcessors, TemplateStringFormSequenceByteLevel) {
  json j = with_added(base(), {{{"content", "<s>"}, {"special", true}}, {{"content", "</s>"}, {"special", true}}});
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"trim_offsets", false}},
        {{"type", "TemplateProcessing"},
         {"single", "<s> $A </s>"},
         {"pair", "<s> $A </s> $B:1 </s>:1"},
         {"special_tokens",
          {{"<s>", {{"id", "<s>"}, {"ids", {7}}, {"tokens", {"<s>"}}}},
           {"</s>", {{"id", "</s>"}, {"ids", {8}}, {"tokens", {"</s>"}}}}}}}}}};
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("abc", true), V({7, 4, 8}));
  EXPECT_EQ(t.encode("abc", false), V({4}));
  EXPECT_EQ(t.encode("", true), V({7, 8}));
  Encoding e = t.encode_detailed("abc", true);
  EXPECT_EQ(e.word_ids, V({-1, 0, -1}));
  EXPECT_EQ(e.offsets[0], std::make_pair(size_t{0}, size_t{0}));
}

// --------------------------------------------------------------- regex translation

TEST(OnigRegex, UnicodeSixteenAndWordBoundary) {
  std::vector<std::pair<size_t, size_t>> m;
  tok::Regex so("\\p{So}", "t");
  so.find_all("\xF0\x9F\xAB\xA9", m);  // U+1FAE9 (Unicode 16.0, So)
  EXPECT_EQ(m.size(), 1u);
  m.clear();
  tok::Regex letters("\\p{L}+", "t");
  letters.find_all("\xEA\x9F\x8B\xEA\x9F\x8C", m);  // U+A7CB U+A7CC (Unicode 16.0 letters)
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], std::make_pair(size_t{0}, size_t{6}));
  m.clear();
  // Oniguruma: a combining mark is a word character, so no \b between 'a' and U+0301.
  tok::Regex wb("a\\b", "t");
  wb.find_all("a\xCC\x81", m);
  EXPECT_TRUE(m.empty());
  wb.find_all("a b", m);
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(tok::translate_onig_pattern("x{,3}", "t"), "x{0,3}");
  EXPECT_EQ(tok::translate_onig_pattern("(?m:.)", "t"), "(?s:.)");
  EXPECT_EQ(tok::translate_onig_pattern("[a-z]\\h", "t"), "[a-z][0-9a-fA-F]");
}

TEST(OnigRegex, EmptyMatchesFollowOnigFindIter) {
  std::vector<std::pair<size_t, size_t>> m;
  tok::Regex re("a*|b", "t");
  re.find_all("b", m);  // the empty match at 0 wins; "b" is never matched
  std::vector<std::pair<size_t, size_t>> want = {{0, 0}, {1, 1}};
  EXPECT_EQ(m, want);
}

// --------------------------------------------------------------- streaming

TEST(StreamDecoder, NeverHalfACharacter) {
  json j = base();
  j["model"]["vocab"] = json::object();
  for (int b = 0; b < 256; ++b) j["model"]["vocab"][tok::byte_to_char(static_cast<uint8_t>(b))] = b;
  j["model"]["merges"] = json::array();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  j["decoder"] = {{"type", "ByteLevel"}};
  Tokenizer t = make(j);
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push('a'), "a");
  EXPECT_EQ(sd.push(0xF0), "");
  EXPECT_EQ(sd.push(0x9F), "");
  EXPECT_EQ(sd.push(0x98), "");
  EXPECT_EQ(sd.push(0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(sd.push(0xC3), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");  // dangling lead byte, as decode gives
  EXPECT_EQ(t.decode(V({0xC3})), "\xEF\xBF\xBD");
  // Invalid byte then ASCII: both come out together.
  EXPECT_EQ(sd.push(0xFF), "");
  EXPECT_EQ(sd.push('b'), "\xEF\xBF\xBD" "b");
  EXPECT_EQ(sd.flush(), "");
  // Random byte streams: concatenation == decode.
  uint32_t seed = 12345;
  for (int round = 0; round < 200; ++round) {
    std::vector<int32_t> ids;
    for (int k = 0; k < 12; ++k) {
      seed = seed * 1664525u + 1013904223u;
      ids.push_back(static_cast<int32_t>((seed >> 8) % 256));
    }
    StreamDecoder s(t);
    std::string out;
    for (int32_t id : ids) out += s.push(id);
    out += s.flush();
    EXPECT_EQ(out, t.decode(ids));
  }
}

TEST(Encode, InvalidUtf8IsAnError) {
  Tokenizer t = make(base());
  try {
    t.encode("ab\xC3(");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8 (byte offset 2)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.encode("\xED\xA0\x80"), Error);  // encoded surrogate
  EXPECT_THROW(t.encode("\xC0\xAF"), Error);      // overlong
}

}  // namespace
}  // namespace huginn
