// libFuzzer target: tokenizer.json loading, Oniguruma->PCRE2 regex
// translation, and encode/decode/stream-decode of arbitrary bytes.
//
// The first input byte picks a mode:
//   0: the rest is a tokenizer.json (must load or throw huginn::Error);
//   1: the rest is a Split regex in a small byte-level tokenizer, then text;
//   other: the rest is text for the golden huginn-like / llama3-like
//          tokenizers ($HUGINN_GOLDEN_DIR, the HUGINN_GOLDEN_DIR macro, or
//          ../shared/golden) and is also decoded as a list of ids.
// Any exception other than huginn::Error, a crash, or a broken invariant
// (streamed text != decode) is a finding.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "huginn/error.h"
#include "huginn/tokenizer.h"
#include "golden_dir.h"

namespace {

using huginn::test::golden_dir;

const std::vector<huginn::Tokenizer>& golden() {
  static const std::vector<huginn::Tokenizer> toks = [] {
    std::vector<huginn::Tokenizer> v;
    for (const char* n : {"huginn-like", "llama3-like"}) {
      try {
        v.push_back(huginn::Tokenizer::load(golden_dir() + "/tokenizer/" + n + "/tokenizer.json"));
      } catch (const huginn::Error&) {
      }
    }
    return v;
  }();
  return toks;
}

// A small byte-level tokenizer whose Split regex is fuzzed.
std::string regex_tokenizer(const std::string& pattern) {
  static const std::string bytes_vocab = [] {
    // GPT-2 byte alphabet, ids 0..255, plus a few merges.
    nlohmann::json vocab = nlohmann::json::object();
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t c = direct ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      std::string s;
      if (c < 0x80) {
        s.push_back(static_cast<char>(c));
      } else {
        s.push_back(static_cast<char>(0xC0 | (c >> 6)));
        s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
      vocab[s] = b;
    }
    vocab["ab"] = 256;
    vocab["abc"] = 257;
    return vocab.dump();
  }();
  nlohmann::json j = {
      {"added_tokens", {{{"content", "<|x|>"}, {"special", true}}, {{"content", "ab"}, {"special", false}, {"lstrip", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Removed"}, {"invert", true}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", nlohmann::json::parse(bytes_vocab)}, {"merges", {"a b", "ab c"}}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void exercise(const huginn::Tokenizer& tok, const std::string& text) {
  try {
    auto ids = tok.encode(text, true);
    std::string back = tok.decode(ids);
    (void)back;
    auto e = tok.encode_detailed(text, false);
    for (auto [a, b] : e.offsets)
      if (a > b || b > text.size()) abort();
  } catch (const huginn::Error&) {
  }
  // Bytes as ids (4 bytes each, some out of range).
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < text.size(); i += 2)
    ids.push_back(static_cast<int32_t>(static_cast<uint8_t>(text[i]) | (static_cast<uint8_t>(text[i + 1]) << 8)) -
                  256);
  for (bool skip : {false, true}) {
    std::string full = tok.decode(ids, skip);
    huginn::StreamDecoder sd(tok, skip);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    if (streamed != full) abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      try {
        auto tok = huginn::Tokenizer::from_json(rest, "fuzz.json");
        exercise(tok, "Hello world <|x|> \xC3\xA9 123");
      } catch (const huginn::Error&) {
      }
      break;
    case 1: {
      size_t cut = rest.find('\n');
      std::string pattern = rest.substr(0, cut);
      std::string text = cut == std::string::npos ? "" : rest.substr(cut + 1);
      try {
        auto tok = huginn::Tokenizer::from_json(regex_tokenizer(pattern), "fuzz-regex.json");
        exercise(tok, text);
      } catch (const huginn::Error&) {
      }
      break;
    }
    default:
      for (const auto& tok : golden()) exercise(tok, rest);
      break;
  }
  return 0;
}
