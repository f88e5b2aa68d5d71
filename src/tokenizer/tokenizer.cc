// Tokenizer: loading tokenizer.json, added tokens, encode, decode, streaming.
#include "huginn/tokenizer.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "huginn/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace huginn {

using json = nlohmann::json;
using tok::Piece;

namespace {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = false;
};

// Leftmost-longest multi-pattern matcher over bytes (a trie).
class AddedMatcher {
 public:
  void add(const std::string& s, int32_t index) {
    if (s.empty()) return;
    if (nodes_.empty()) nodes_.emplace_back();
    int32_t n = 0;
    for (unsigned char c : s) {
      auto it = nodes_[n].next.find(c);
      if (it == nodes_[n].next.end()) {
        nodes_.emplace_back();
        int32_t fresh = static_cast<int32_t>(nodes_.size() - 1);
        nodes_[n].next.emplace(c, fresh);
        n = fresh;
      } else {
        n = it->second;
      }
    }
    nodes_[n].value = index;
    first_[static_cast<unsigned char>(s[0])] = true;
  }
  bool empty() const { return nodes_.empty(); }
  // Finds the leftmost match at or after pos; returns false if none.
  bool find(std::string_view s, size_t pos, size_t& start, size_t& end, int32_t& value) const {
    for (size_t i = pos; i < s.size(); ++i) {
      if (!first_[static_cast<unsigned char>(s[i])]) continue;
      int32_t n = 0;
      int32_t best = -1;
      size_t best_end = 0;
      for (size_t k = i; k < s.size(); ++k) {
        auto it = nodes_[n].next.find(static_cast<unsigned char>(s[k]));
        if (it == nodes_[n].next.end()) break;
        n = it->second;
        if (nodes_[n].value >= 0) {
          best = nodes_[n].value;
          best_end = k + 1;
        }
      }
      if (best >= 0) {
        start = i;
        end = best_end;
        value = best;
        return true;
      }
    }
    return false;
  }

 private:
  struct Node {
    std::unordered_map<unsigned char, int32_t> next;
    int32_t value = -1;
  };
  std::vector<Node> nodes_;
  bool first_[256] = {};
};

// Word characters as the reference's single_word check sees them (regex \w).
bool is_word_char(char32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  if (u_isUAlphabetic(static_cast<UChar32>(c))) return true;
  int8_t t = u_charType(static_cast<UChar32>(c));
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}

char32_t last_cp(std::string_view s) {
  size_t k = s.size() - 1;
  while (k > 0 && tok::is_continuation(static_cast<unsigned char>(s[k]))) --k;
  return tok::next_cp(s, k);
}

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::BpeModel> model;
  std::unique_ptr<tok::PostProcessor> post_processor;
  std::unique_ptr<tok::Decoder> decoder;
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  tok::Vocab added_by_content;
  AddedMatcher raw_matcher;   // added tokens with normalized == false
  AddedMatcher norm_matcher;  // added tokens with normalized == true (content normalized)
  size_t vocab_size = 0;

  // Splits s on added-token matches of m (with lstrip/rstrip/single_word),
  // appending pieces: added matches get added_id, the rest added_id = -1.
  void split_added(const AddedMatcher& m, std::string_view s, size_t base, Piece::Align align,
                   std::vector<Piece>& out) const;
  Encoding run(std::string_view text, bool add_special, bool detailed) const;
  const std::string* token_of(int32_t id) const;
};

void Tokenizer::Impl::split_added(const AddedMatcher& m, std::string_view s, size_t base, Piece::Align align,
                                  std::vector<Piece>& out) const {
  auto push_text = [&](size_t a, size_t b) {
    if (a >= b) return;
    Piece p;
    p.text.assign(s.substr(a, b - a));
    p.start = align == Piece::kBytes ? base + a : base;
    p.end = align == Piece::kBytes ? base + b : base + s.size();
    p.align = align;
    out.push_back(std::move(p));
  };
  if (m.empty()) {
    push_text(0, s.size());
    return;
  }
  size_t offset = 0;  // end of the last emitted piece
  size_t pos = 0;
  size_t start, stop;
  int32_t idx;
  while (pos < s.size() && m.find(s, pos, start, stop, idx)) {
    pos = stop;
    const AddedToken& t = added[idx];
    if (start < offset) continue;
    if (t.single_word) {
      bool start_ok = start == 0 || !is_word_char(last_cp(s.substr(0, start)));
      size_t k = stop;
      bool stop_ok = stop == s.size() || !is_word_char(tok::next_cp(s, k));
      if (!start_ok || !stop_ok) continue;
    }
    if (t.lstrip) {
      size_t ns = start;
      while (ns > offset) {
        size_t k = ns - 1;
        while (k > 0 && tok::is_continuation(static_cast<unsigned char>(s[k]))) --k;
        size_t j = k;
        if (!tok::is_whitespace(tok::next_cp(s, j))) break;
        ns = k;
      }
      start = ns;
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        size_t j = stop;
        if (!tok::is_whitespace(tok::next_cp(s, j))) break;
        stop = j;
      }
      pos = stop;
    }
    push_text(offset, start);
    Piece p;
    p.text.assign(s.substr(start, stop - start));
    p.start = align == Piece::kBytes ? base + start : base;
    p.end = align == Piece::kBytes ? base + stop : base + s.size();
    p.added_id = t.id;
    out.push_back(std::move(p));
    offset = stop;
  }
  push_text(offset, s.size());
}

const std::string* Tokenizer::Impl::token_of(int32_t id) const {
  if (auto it = added_by_id.find(id); it != added_by_id.end()) return &added[it->second].content;
  const auto& v = model->id_to_token();
  if (id >= 0 && static_cast<size_t>(id) < v.size() && !v[static_cast<size_t>(id)].empty())
    return &v[static_cast<size_t>(id)];
  return nullptr;
}

Encoding Tokenizer::Impl::run(std::string_view text, bool add_special, bool detailed) const {
  if (size_t bad = tok::find_invalid_utf8(text); bad != std::string_view::npos)
    throw Error("tokenizer: encode: input text is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");

  // 1. Added tokens that match the raw text.
  std::vector<Piece> pieces;
  split_added(raw_matcher, text, 0, Piece::kBytes, pieces);

  // 2. Normalize the stretches between them, then match normalized added tokens.
  if (normalizer || !norm_matcher.empty()) {
    std::vector<Piece> next;
    next.reserve(pieces.size());
    for (auto& p : pieces) {
      if (p.added_id >= 0) {
        next.push_back(std::move(p));
        continue;
      }
      std::string n = normalizer ? normalizer->normalize(p.text) : p.text;
      Piece::Align align = n == p.text ? Piece::kBytes : Piece::kNone;
      std::vector<Piece> sub;
      split_added(norm_matcher, n, p.start, align, sub);
      for (auto& q : sub) {
        if (align == Piece::kNone) {
          q.start = p.start;
          q.end = p.end;
        }
        next.push_back(std::move(q));
      }
    }
    pieces = std::move(next);
  }

  // 3. Pre-tokenize each stretch on its own.
  if (pre_tokenizer) pre_tokenizer->apply(pieces);

  // 4. Model.
  Encoding enc;
  enc.ids.reserve(text.size() / 3 + 4);
  std::vector<tok::BpeToken> toks;
  int32_t word = 0;
  for (const auto& p : pieces) {
    if (p.text.empty() && p.added_id < 0) continue;
    if (detailed) enc.pieces.emplace_back(p.start, p.end);
    if (p.added_id >= 0) {
      enc.ids.push_back(p.added_id);
      if (detailed) {
        enc.offsets.emplace_back(p.start, p.end);
        enc.word_ids.push_back(word);
      }
      ++word;
      continue;
    }
    toks.clear();
    model->tokenize(p.text, toks);
    for (const auto& t : toks) {
      enc.ids.push_back(t.id);
      if (detailed) {
        auto [a, b] = p.span(t.start, t.end);
        // Widen to whole characters of the input.
        if (p.align != Piece::kNone) {
          while (a > 0 && a < text.size() && tok::is_continuation(static_cast<unsigned char>(text[a]))) --a;
          while (b < text.size() && b > 0 && tok::is_continuation(static_cast<unsigned char>(text[b]))) ++b;
        }
        enc.offsets.emplace_back(a, b);
        enc.word_ids.push_back(word);
      }
    }
    ++word;
  }

  // 5. Post-process.
  if (post_processor) post_processor->process(enc, add_special, detailed);
  return enc;
}

// ---------------------------------------------------------------- loading

Tokenizer Tokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open tokenizer file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  return from_json(ss.str(), path);
}

Tokenizer Tokenizer::from_json(std::string_view text, const std::string& src) {
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw Error(src + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(src + ": top level must be a JSON object");
  auto impl = std::make_shared<Impl>();
  impl->source = src;
  auto field = [&](const char* key) -> const json& {
    static const json null_json;
    auto it = j.find(key);
    return it == j.end() ? null_json : *it;
  };
  try {
    const json& model = field("model");
    if (model.is_null()) throw Error(src + ": missing \"model\"");
    if (!model.is_object()) throw Error(src + ": \"model\" must be an object");
    std::string mtype = "BPE";
    if (auto t = model.find("type"); t != model.end()) {
      if (!t->is_string()) throw Error(src + ": model \"type\" must be a string");
      mtype = t->get<std::string>();
    } else if (!model.contains("merges")) {
      throw Error(src + ": model has no \"type\" and is not a BPE model (no \"merges\")");
    }
    if (mtype != "BPE") throw Error(src + ": unsupported model type '" + mtype + "'");
    impl->model = std::make_unique<tok::BpeModel>(model, src);
    impl->normalizer = tok::make_normalizer(field("normalizer"), src);
    impl->pre_tokenizer = tok::make_pre_tokenizer(field("pre_tokenizer"), src);
    impl->post_processor = tok::make_post_processor(field("post_processor"), src);
    impl->decoder = tok::make_decoder(field("decoder"), src);

    // Added tokens: the id is the model's id for the same content, else the
    // next free id (the reference ignores the written "id").
    const auto& vocab = impl->model->vocab();
    size_t model_size = vocab.size();
    int64_t max_added = -1;
    const json& at = field("added_tokens");
    if (!at.is_null() && !at.is_array()) throw Error(src + ": \"added_tokens\" must be an array");
    if (at.is_array()) {
      for (const auto& e : at) {
        if (!e.is_object()) throw Error(src + ": added_tokens entries must be objects");
        auto c = e.find("content");
        if (c == e.end() || !c->is_string()) throw Error(src + ": added token without a string \"content\"");
        AddedToken t;
        t.content = c->get<std::string>();
        if (t.content.empty()) throw Error(src + ": added token with empty content");
        auto b = [&](const char* key, bool def) {
          auto it = e.find(key);
          if (it == e.end() || it->is_null()) return def;
          if (!it->is_boolean())
            throw Error(src + ": added token '" + t.content + "': \"" + key + "\" must be a boolean");
          return it->get<bool>();
        };
        t.special = b("special", false);
        t.single_word = b("single_word", false);
        t.lstrip = b("lstrip", false);
        t.rstrip = b("rstrip", false);
        t.normalized = b("normalized", !t.special);
        if (impl->added_by_content.count(t.content)) continue;
        if (auto v = vocab.find(t.content); v != vocab.end()) {
          t.id = v->second;
        } else if (max_added < 0) {
          t.id = static_cast<int32_t>(model_size);
        } else {
          t.id = (static_cast<size_t>(max_added) >= model_size || model_size == 0) ? static_cast<int32_t>(max_added + 1)
                                                                                  : static_cast<int32_t>(model_size);
        }
        max_added = std::max<int64_t>(max_added, t.id);
        size_t index = impl->added.size();
        impl->added_by_content.emplace(t.content, t.id);
        impl->added_by_id[t.id] = index;
        impl->added.push_back(t);
      }
    }
    for (size_t i = 0; i < impl->added.size(); ++i) {
      const auto& t = impl->added[i];
      if (t.normalized && impl->normalizer)
        impl->norm_matcher.add(impl->normalizer->normalize(t.content), static_cast<int32_t>(i));
      else if (t.normalized)
        impl->norm_matcher.add(t.content, static_cast<int32_t>(i));
      else
        impl->raw_matcher.add(t.content, static_cast<int32_t>(i));
    }
    size_t vs = impl->model->id_to_token().size();
    for (const auto& t : impl->added) vs = std::max(vs, static_cast<size_t>(t.id) + 1);
    impl->vocab_size = vs;
  } catch (const json::exception& e) {
    throw Error(src + ": " + e.what());
  }
  return Tokenizer(std::move(impl));
}

// ---------------------------------------------------------------- API

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return impl_->run(text, add_special_tokens, false).ids;
}

Encoding Tokenizer::encode_detailed(std::string_view text, bool add_special_tokens) const {
  return impl_->run(text, add_special_tokens, true);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* t = impl_->token_of(id);
    if (!t) continue;
    if (skip_special_tokens) {
      auto it = impl_->added_by_id.find(id);
      if (it != impl_->added_by_id.end() && impl_->added[it->second].special) continue;
    }
    tokens.push_back(*t);
  }
  if (!impl_->decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out.push_back(' ');
      out += tokens[i];
    }
    return out;
  }
  impl_->decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  const std::string* t = impl_->token_of(id);
  return t ? *t : std::string();
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
  const auto& v = impl_->model->vocab();
  if (auto it = v.find(token); it != v.end()) return it->second;
  return std::nullopt;
}

size_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

bool Tokenizer::is_special(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

// ---------------------------------------------------------------- streaming

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  std::string s = tokenizer_.decode(ids_, skip_special_);
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  bool ends_with_replacement =
      s.size() >= 3 && std::string_view(s).substr(s.size() - 3) == kReplacement;
  if (s.size() > prefix_.size() && !ends_with_replacement) {
    if (s.compare(0, prefix_.size(), prefix_) != 0) {
      // The decoder rewrote earlier text (e.g. a first-token rule): emit the
      // new text whole from here on.
      prefix_.clear();
    }
    std::string fresh = s.substr(prefix_.size());
    size_t new_prefix_index = ids_.size() - prefix_index_;
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<ptrdiff_t>(prefix_index_));
    prefix_ = tokenizer_.decode(ids_, skip_special_);
    prefix_index_ = new_prefix_index;
    return fresh;
  }
  return {};
}

std::string StreamDecoder::flush() {
  std::string s = tokenizer_.decode(ids_, skip_special_);
  std::string rest = s.size() > prefix_.size() && s.compare(0, prefix_.size(), prefix_) == 0 ? s.substr(prefix_.size())
                                                                                            : std::string();
  reset();
  return rest;
}

void StreamDecoder::reset() {
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
}

}  // namespace huginn
