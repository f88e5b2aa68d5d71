// The pipeline components of tokenizer.json (normalizers, pre-tokenizers,
// post-processors, decoders), built from their JSON objects. Internal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "huginn/tokenizer.h"

namespace huginn::tok {

// A piece of text on its way through the pre-tokenizers.
struct Piece {
  // How positions in `text` relate to the input text:
  //  kBytes: byte i of text is input byte start + i;
  //  kChars: character i of text is input byte start + i (after ByteLevel);
  //  kNone: no alignment; everything maps to [start, end).
  enum Align : uint8_t { kBytes, kChars, kNone };
  std::string text;
  size_t start = 0, end = 0;
  Align align = kBytes;
  int32_t added_id = -1;  // >= 0: an added-token match, never split or modelled

  // Input span of text[a, b) (byte offsets into text).
  std::pair<size_t, size_t> span(size_t a, size_t b) const;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces pieces by their splits; pieces with added_id >= 0 pass through.
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(Encoding& enc, bool add_special_tokens, bool detailed) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// `ctx` is the source name for error messages. The token_to_id callback is
// used by TemplateProcessing to check its special tokens.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& ctx);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& ctx);
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const std::string& ctx);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& ctx);

// GPT-2 bytes_to_unicode alphabet.
const std::string& byte_to_char(uint8_t b);            // UTF-8 of the char for byte b
int char_to_byte(char32_t c);                          // -1 if not in the alphabet

}  // namespace huginn::tok
