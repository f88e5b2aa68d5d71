// Hugging Face-compatible tokenizer: loads a `tokenizer.json` (BPE model,
// added tokens, normalizers, pre-tokenizers, post-processors, decoders) and
// encodes/decodes exactly as the `tokenizers` library does. See
// docs/TOKENIZER.md for what is supported and the few deliberate differences.
//
// A Tokenizer is immutable after loading and cheap to copy (it shares its
// data); encode/decode are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace huginn {

// The detailed result of an encode. Offsets are [start, end) UTF-8 byte
// offsets into the text given to encode (into the normalized text when the
// tokenizer has a normalizer that changed it). A token that covers only part
// of a character gets the whole character's span.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<std::pair<size_t, size_t>> offsets;      // one per id
  std::vector<int32_t> word_ids;                       // index into pieces; -1 for post-processor tokens
  std::vector<std::pair<size_t, size_t>> pieces;       // pre-tokens (added-token matches included)
};

class Tokenizer {
 public:
  // Loads a tokenizer.json file. Throws huginn::Error naming the file and the
  // problem (unreadable file, bad JSON, unsupported component, ...).
  static Tokenizer load(const std::string& path);
  // Parses tokenizer.json content; source_name is used in error messages.
  static Tokenizer from_json(std::string_view json, const std::string& source_name);

  // Encodes UTF-8 text. Invalid UTF-8 throws huginn::Error (the reference
  // library cannot receive such text at all).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  Encoding encode_detailed(std::string_view text, bool add_special_tokens = false) const;

  // Decodes ids to text. Ids outside the vocabulary are dropped; invalid
  // UTF-8 produced by byte tokens becomes U+FFFD (one per maximal invalid
  // subsequence). With skip_special_tokens, added tokens marked special are
  // dropped.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  std::string id_to_token(int32_t id) const;  // "" if out of range / unused
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // One past the highest id (model vocabulary and added tokens).
  size_t vocab_size() const;
  bool is_special(int32_t id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
  friend class StreamDecoder;
};

// Incremental decoding for streaming generation: push ids one at a time and
// get back only text that is complete (never half a UTF-8 character). The
// concatenation of everything push() and flush() return equals
// tokenizer.decode(all ids). Same algorithm as the reference's DecodeStream.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  // Returns the newly completed text ("" if none yet).
  std::string push(int32_t id);
  // Returns whatever is still pending (dangling bytes become U+FFFD) and resets.
  std::string flush();
  void reset();

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  std::string prefix_;
  size_t prefix_index_ = 0;
};

}  // namespace huginn
