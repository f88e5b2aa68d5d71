// The BPE model of tokenizer.json. Internal.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace huginn::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// One token of a word: id and [start, end) byte range in the word.
struct BpeToken {
  int32_t id;
  uint32_t start, end;
};

class BpeModel {
 public:
  // Builds from the "model" object; throws huginn::Error prefixed with ctx.
  BpeModel(const nlohmann::json& model, const std::string& ctx);

  // Appends the tokens of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<BpeToken>& out) const;

  const Vocab& vocab() const { return vocab_; }
  // id -> token ("" for holes); size = max id + 1.
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }

 private:
  void merge_word(std::string_view word, std::vector<BpeToken>& out) const;

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  // (left id, right id) -> (rank, new id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::string prefix_, suffix_;
  bool has_prefix_ = false, has_suffix_ = false;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  // Single-character tokens (no prefix/suffix), for code points < 0x800.
  std::vector<int32_t> char_ids_;

  // Word cache (words up to kMaxCachedWord bytes, at most kCacheCapacity).
  static constexpr size_t kMaxCachedWord = 256;
  static constexpr size_t kCacheCapacity = 100000;
  mutable std::mutex cache_mu_;
  // std::hash<std::string> keeps hash codes in the nodes (faster lookups).
  mutable std::unordered_map<std::string, std::vector<BpeToken>> cache_;
};

}  // namespace huginn::tok
