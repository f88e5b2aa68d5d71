#include "tokenizer/components.h"

#include <array>
#include <nlohmann/json.hpp>

#include "huginn/error.h"
#include "tokenizer/onig_regex.h"
#include "tokenizer/unicode.h"

namespace huginn::tok {

using json = nlohmann::json;

// ---------------------------------------------------------------- helpers

namespace {

[[noreturn]] void fail(const std::string& ctx, const std::string& what) { throw Error(ctx + ": " + what); }

std::string type_of(const json& j, const std::string& ctx, const char* category) {
  if (!j.is_object()) fail(ctx, std::string(category) + " must be an object or null");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) fail(ctx, std::string(category) + " has no \"type\"");
  return it->get<std::string>();
}

std::string get_str(const json& j, const char* key, const std::string& ctx, const std::string& where,
                    const char* def = nullptr) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return def;
    fail(ctx, where + ": missing \"" + key + "\"");
  }
  if (!it->is_string()) fail(ctx, where + ": \"" + key + "\" must be a string");
  return it->get<std::string>();
}

bool get_bool(const json& j, const char* key, bool def, const std::string& ctx, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(ctx, where + ": \"" + key + "\" must be a boolean");
  return it->get<bool>();
}

size_t get_uint(const json& j, const char* key, size_t def, const std::string& ctx, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0))
    fail(ctx, where + ": \"" + key + "\" must be a non-negative integer");
  return it->get<size_t>();
}

char32_t get_char(const json& j, const char* key, char32_t def, const std::string& ctx, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_string()) fail(ctx, where + ": \"" + key + "\" must be a one-character string");
  std::string s = it->get<std::string>();
  size_t i = 0;
  if (s.empty()) fail(ctx, where + ": \"" + key + "\" must be a one-character string");
  char32_t c = next_cp(s, i);
  if (i != s.size()) fail(ctx, where + ": \"" + key + "\" must be a one-character string");
  return c;
}

const json& get_array(const json& j, const char* key, const std::string& ctx, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) fail(ctx, where + ": \"" + key + "\" must be an array");
  return *it;
}

// {"String": s} or {"Regex": r}: compiled as a Regex (literal for String).
std::unique_ptr<Regex> get_pattern(const json& j, const std::string& ctx, const std::string& where) {
  auto it = j.find("pattern");
  if (it == j.end() || !it->is_object()) fail(ctx, where + ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
  if (auto s = it->find("String"); s != it->end() && s->is_string()) {
    std::string lit = s->get<std::string>();
    if (lit.empty()) return nullptr;  // an empty string matches nothing
    return std::make_unique<Regex>(lit, ctx + ": " + where, true);
  }
  if (auto r = it->find("Regex"); r != it->end() && r->is_string())
    return std::make_unique<Regex>(r->get<std::string>(), ctx + ": " + where);
  fail(ctx, where + ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
}

void replace_all(const Regex* re, std::string& s, const std::string& content) {
  if (!re) return;
  std::vector<std::pair<size_t, size_t>> m;
  re->find_all(s, m);
  if (m.empty()) return;
  std::string out;
  size_t prev = 0;
  for (auto [a, b] : m) {
    out.append(s, prev, a - prev);
    out += content;
    prev = b;
  }
  out.append(s, prev, std::string::npos);
  s = std::move(out);
}

}  // namespace

// ---------------------------------------------------------------- Piece

std::pair<size_t, size_t> Piece::span(size_t a, size_t b) const {
  switch (align) {
    case kBytes: return {start + a, start + b};
    case kChars: {
      size_t ca = 0, i = 0;
      while (i < a) i += utf8_len(static_cast<unsigned char>(text[i])), ++ca;
      size_t cb = ca;
      while (i < b) i += utf8_len(static_cast<unsigned char>(text[i])), ++cb;
      return {start + ca, start + cb};
    }
    case kNone: break;
  }
  return {start, end};
}

// ---------------------------------------------------------------- byte-level alphabet

namespace {
struct ByteAlphabet {
  std::array<std::string, 256> to_char;
  std::array<int16_t, 324> to_byte;
  ByteAlphabet() {
    to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t c = direct ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      append_utf8(to_char[b], c);
      to_byte[c] = static_cast<int16_t>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}
}  // namespace

const std::string& byte_to_char(uint8_t b) { return alphabet().to_char[b]; }
int char_to_byte(char32_t c) { return c < 324 ? alphabet().to_byte[c] : -1; }

// ---------------------------------------------------------------- normalizers

namespace {

class NormSequence : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> items;
  std::string normalize(std::string s) const override {
    for (const auto& n : items) s = n->normalize(std::move(s));
    return s;
  }
};

class NormUnicode : public Normalizer {
 public:
  explicit NormUnicode(NormForm f) : form_(f) {}
  std::string normalize(std::string s) const override { return tok::normalize(s, form_); }

 private:
  NormForm form_;
};

class NormLowercase : public Normalizer {
 public:
  std::string normalize(std::string s) const override { return to_lower(s); }
};

class NormReplace : public Normalizer {
 public:
  std::unique_ptr<Regex> re;
  std::string content;
  std::string normalize(std::string s) const override {
    replace_all(re.get(), s, content);
    return s;
  }
};

class NormPrepend : public Normalizer {
 public:
  std::string prepend;
  std::string normalize(std::string s) const override { return s.empty() ? s : prepend + s; }
};

class NormStrip : public Normalizer {
 public:
  bool left = true, right = true;
  std::string normalize(std::string s) const override {
    size_t a = 0, b = s.size();
    if (left) {
      while (a < b) {
        size_t i = a;
        if (!is_whitespace(next_cp(s, i))) break;
        a = i;
      }
    }
    if (right) {
      while (b > a) {
        size_t k = b - 1;
        while (k > a && is_continuation(static_cast<unsigned char>(s[k]))) --k;
        size_t i = k;
        if (!is_whitespace(next_cp(s, i))) break;
        b = k;
      }
    }
    return s.substr(a, b - a);
  }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& ctx) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, ctx, "normalizer");
  std::string where = "normalizer " + t;
  if (t == "Sequence") {
    auto seq = std::make_unique<NormSequence>();
    for (const auto& item : get_array(j, "normalizers", ctx, where)) {
      if (auto n = make_normalizer(item, ctx)) seq->items.push_back(std::move(n));
    }
    return seq;
  }
  if (t == "NFC") return std::make_unique<NormUnicode>(NormForm::NFC);
  if (t == "NFD") return std::make_unique<NormUnicode>(NormForm::NFD);
  if (t == "NFKC") return std::make_unique<NormUnicode>(NormForm::NFKC);
  if (t == "NFKD") return std::make_unique<NormUnicode>(NormForm::NFKD);
  if (t == "Lowercase") return std::make_unique<NormLowercase>();
  if (t == "Replace") {
    auto n = std::make_unique<NormReplace>();
    n->re = get_pattern(j, ctx, where);
    n->content = get_str(j, "content", ctx, where);
    return n;
  }
  if (t == "Prepend") {
    auto n = std::make_unique<NormPrepend>();
    n->prepend = get_str(j, "prepend", ctx, where);
    return n;
  }
  if (t == "Strip") {
    auto n = std::make_unique<NormStrip>();
    n->left = get_bool(j, "strip_left", true, ctx, where);
    n->right = get_bool(j, "strip_right", true, ctx, where);
    return n;
  }
  fail(ctx, "unsupported normalizer type '" + t + "'");
}

// ---------------------------------------------------------------- pre-tokenizers

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& j, const std::string& ctx, const std::string& where, Behavior def) {
  auto it = j.find("behavior");
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_string()) fail(ctx, where + ": \"behavior\" must be a string");
  std::string b = it->get<std::string>();
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  fail(ctx, where + ": unsupported split behavior '" + b + "'");
}

struct Span {
  size_t a, b;
  bool match;
};

// Turns the matches of a piece into the reference's (offsets, is_match)
// partition, applies invert and the behaviour, and appends the resulting
// non-empty sub-pieces to out.
void split_piece(const Piece& p, const std::vector<std::pair<size_t, size_t>>& matches, bool invert, Behavior beh,
                 std::vector<Piece>& out) {
  thread_local std::vector<Span> parts;  // reused: no allocation per piece
  thread_local std::vector<Span> res;    // match flag here = "remove"
  parts.clear();
  res.clear();
  if (p.text.empty()) {
    parts.push_back({0, 0, false});
  } else {
    size_t prev = 0;
    for (auto [a, b] : matches) {
      if (prev != a) parts.push_back({prev, a, false});
      parts.push_back({a, b, true});
      prev = b;
    }
    if (prev != p.text.size()) parts.push_back({prev, p.text.size(), false});
  }
  if (invert)
    for (auto& s : parts) s.match = !s.match;

  switch (beh) {
    case Behavior::Removed:
      for (auto& s : parts)
        if (!s.match) res.push_back({s.a, s.b, false});
      break;
    case Behavior::Isolated:
      for (auto& s : parts) res.push_back({s.a, s.b, false});
      break;
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (auto& s : parts) {
        if (s.match && !prev_match && !res.empty())
          res.back().b = s.b;
        else
          res.push_back({s.a, s.b, false});
        prev_match = s.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;
      for (size_t k = parts.size(); k-- > 0;) {
        const auto& s = parts[k];
        if (s.match && !prev_match && !res.empty())
          res.back().a = s.a;
        else
          res.push_back({s.a, s.b, false});
        prev_match = s.match;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
    case Behavior::Contiguous: {
      bool prev_match = false;
      for (auto& s : parts) {
        if (s.match == prev_match && !res.empty())
          res.back().b = s.b;
        else
          res.push_back({s.a, s.b, false});
        prev_match = s.match;
      }
      break;
    }
  }
  for (auto& s : res) {
    if (s.a == s.b) continue;
    Piece q;
    q.text = p.text.substr(s.a, s.b - s.a);
    auto [x, y] = p.span(s.a, s.b);
    q.start = x;
    q.end = y;
    q.align = p.align;
    out.push_back(std::move(q));
  }
}

// Every character for which pred holds is its own match.
template <class Pred>
void char_matches(const std::string& s, Pred pred, std::vector<std::pair<size_t, size_t>>& m) {
  size_t i = 0;
  while (i < s.size()) {
    size_t a = i;
    char32_t c = next_cp(s, i);
    if (pred(c)) m.emplace_back(a, i);
  }
}

class PreSequence : public PreTokenizer {
 public:
  std::vector<std::unique_ptr<PreTokenizer>> items;
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& p : items) p->apply(pieces);
  }
};

// Base for splitters: subclasses find the matches of one piece.
class Splitter : public PreTokenizer {
 public:
  bool invert = false;
  Behavior behavior = Behavior::Isolated;
  virtual void matches(const std::string& s, std::vector<std::pair<size_t, size_t>>& m) const = 0;
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 2);
    std::vector<std::pair<size_t, size_t>> m;
    for (auto& p : pieces) {
      if (p.added_id >= 0) {
        out.push_back(std::move(p));
        continue;
      }
      m.clear();
      if (!p.text.empty()) matches(p.text, m);
      split_piece(p, m, invert, behavior, out);
    }
    pieces = std::move(out);
  }
};

class PreSplit : public Splitter {
 public:
  std::unique_ptr<Regex> re;  // null: empty literal, matches nothing
  void matches(const std::string& s, std::vector<std::pair<size_t, size_t>>& m) const override {
    if (re) re->find_all(s, m);
  }
};

class PreWhitespaceSplit : public Splitter {
 public:
  PreWhitespaceSplit() { behavior = Behavior::Removed; }
  void matches(const std::string& s, std::vector<std::pair<size_t, size_t>>& m) const override {
    char_matches(s, is_whitespace, m);
  }
};

class PrePunctuation : public Splitter {
 public:
  void matches(const std::string& s, std::vector<std::pair<size_t, size_t>>& m) const override {
    char_matches(s, is_punctuation, m);
  }
};

class PreDigits : public Splitter {
 public:
  void matches(const std::string& s, std::vector<std::pair<size_t, size_t>>& m) const override {
    char_matches(s, is_numeric, m);
  }
};

class PreByteLevel : public PreTokenizer {
 public:
  bool add_prefix_space = true;
  std::unique_ptr<Regex> re;  // GPT-2 regex when use_regex
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> split;
    std::vector<Piece>* src = &pieces;
    if (add_prefix_space || re) {
      split.reserve(pieces.size() * 2);
      std::vector<std::pair<size_t, size_t>> m;
      for (auto& p : pieces) {
        if (p.added_id >= 0) {
          split.push_back(std::move(p));
          continue;
        }
        if (add_prefix_space && (p.text.empty() || p.text[0] != ' ')) {
          p.text.insert(p.text.begin(), ' ');
          p.align = Piece::kNone;
        }
        m.clear();
        if (re && !p.text.empty()) re->find_all(p.text, m);
        if (re)
          split_piece(p, m, false, Behavior::Isolated, split);
        else if (!p.text.empty())
          split.push_back(std::move(p));
      }
      src = &split;
    }
    const auto& table = alphabet().to_char;
    for (auto& p : *src) {
      if (p.added_id >= 0) continue;
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) mapped += table[c];
      p.text = std::move(mapped);
      p.align = p.align == Piece::kBytes ? Piece::kChars : Piece::kNone;
    }
    if (src != &pieces) pieces = std::move(split);
  }
};

class PreMetaspace : public PreTokenizer {
 public:
  std::string rep;
  char32_t rep_cp = 0x2581;
  enum class Scheme { Always, First, Never } scheme = Scheme::Always;
  bool split = true;
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 2);
    for (auto& p : pieces) {
      if (p.added_id >= 0) {
        out.push_back(std::move(p));
        continue;
      }
      std::string t;
      t.reserve(p.text.size() + rep.size());
      for (char c : p.text) {
        if (c == ' ')
          t += rep;
        else
          t.push_back(c);
      }
      if (t != p.text) p.align = Piece::kNone;
      bool starts = t.compare(0, rep.size(), rep) == 0;
      if (!starts && (scheme == Scheme::Always || (scheme == Scheme::First && p.start == 0))) {
        t.insert(0, rep);
        p.align = Piece::kNone;
      }
      p.text = std::move(t);
      if (!split) {
        if (!p.text.empty()) out.push_back(std::move(p));
        continue;
      }
      std::vector<std::pair<size_t, size_t>> m;
      for (size_t pos = p.text.find(rep); pos != std::string::npos; pos = p.text.find(rep, pos + rep.size()))
        m.emplace_back(pos, pos + rep.size());
      split_piece(p, m, false, Behavior::MergedWithNext, out);
    }
    pieces = std::move(out);
  }
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& ctx) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, ctx, "pre_tokenizer");
  std::string where = "pre_tokenizer " + t;
  if (t == "Sequence") {
    auto seq = std::make_unique<PreSequence>();
    for (const auto& item : get_array(j, "pretokenizers", ctx, where)) {
      if (auto p = make_pre_tokenizer(item, ctx)) seq->items.push_back(std::move(p));
    }
    return seq;
  }
  if (t == "Split") {
    auto p = std::make_unique<PreSplit>();
    p->re = get_pattern(j, ctx, where);
    auto b = j.find("behavior");
    if (b == j.end() || b->is_null()) fail(ctx, where + ": missing \"behavior\"");
    p->behavior = parse_behavior(j, ctx, where, Behavior::Isolated);
    p->invert = get_bool(j, "invert", false, ctx, where);
    return p;
  }
  if (t == "ByteLevel") {
    auto p = std::make_unique<PreByteLevel>();
    p->add_prefix_space = get_bool(j, "add_prefix_space", true, ctx, where);
    if (get_bool(j, "use_regex", true, ctx, where))
      p->re = std::make_unique<Regex>("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
                                      ctx + ": " + where);
    return p;
  }
  if (t == "Digits") {
    auto p = std::make_unique<PreDigits>();
    p->behavior = get_bool(j, "individual_digits", false, ctx, where) ? Behavior::Isolated : Behavior::Contiguous;
    return p;
  }
  if (t == "Whitespace") {
    auto p = std::make_unique<PreSplit>();
    p->re = std::make_unique<Regex>("\\w+|[^\\w\\s]+", ctx + ": " + where);
    p->behavior = Behavior::Removed;
    p->invert = true;
    return p;
  }
  if (t == "WhitespaceSplit") return std::make_unique<PreWhitespaceSplit>();
  if (t == "Punctuation") {
    auto p = std::make_unique<PrePunctuation>();
    p->behavior = parse_behavior(j, ctx, where, Behavior::Isolated);
    return p;
  }
  if (t == "Metaspace") {
    auto p = std::make_unique<PreMetaspace>();
    p->rep_cp = get_char(j, "replacement", 0x2581, ctx, where);
    append_utf8(p->rep, p->rep_cp);
    auto ps = j.find("prepend_scheme");
    if (ps != j.end() && !ps->is_null()) {
      std::string s = ps->is_string() ? ps->get<std::string>() : "";
      if (s == "always")
        p->scheme = PreMetaspace::Scheme::Always;
      else if (s == "first")
        p->scheme = PreMetaspace::Scheme::First;
      else if (s == "never")
        p->scheme = PreMetaspace::Scheme::Never;
      else
        fail(ctx, where + ": unsupported prepend_scheme '" + s + "'");
    } else {
      p->scheme = get_bool(j, "add_prefix_space", true, ctx, where) ? PreMetaspace::Scheme::Always
                                                                      : PreMetaspace::Scheme::Never;
    }
    p->split = get_bool(j, "split", true, ctx, where);
    return p;
  }
  fail(ctx, "unsupported pre_tokenizer type '" + t + "'");
}

// ---------------------------------------------------------------- post-processors

namespace {

class PostSequence : public PostProcessor {
 public:
  std::vector<std::unique_ptr<PostProcessor>> items;
  void process(Encoding& enc, bool add, bool detailed) const override {
    for (const auto& p : items) p->process(enc, add, detailed);
  }
};

// ByteLevel as a post-processor only trims offsets in the reference; ids
// are unchanged (offsets trimming is not reproduced, see docs/TOKENIZER.md).
class PostNoop : public PostProcessor {
 public:
  void process(Encoding&, bool, bool) const override {}
};

class PostTemplate : public PostProcessor {
 public:
  // An item is either the sequence ($A) or a list of special-token ids.
  struct Item {
    bool is_sequence;
    std::vector<int32_t> ids;
  };
  std::vector<Item> single;
  void process(Encoding& enc, bool add, bool detailed) const override {
    if (!add) return;
    Encoding out;
    for (const auto& it : single) {
      if (it.is_sequence) {
        out.ids.insert(out.ids.end(), enc.ids.begin(), enc.ids.end());
        if (detailed) {
          out.offsets.insert(out.offsets.end(), enc.offsets.begin(), enc.offsets.end());
          out.word_ids.insert(out.word_ids.end(), enc.word_ids.begin(), enc.word_ids.end());
        }
      } else {
        for (int32_t id : it.ids) {
          out.ids.push_back(id);
          if (detailed) {
            out.offsets.emplace_back(0, 0);
            out.word_ids.push_back(-1);
          }
        }
      }
    }
    out.pieces = std::move(enc.pieces);
    enc = std::move(out);
  }
};

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& ctx) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, ctx, "post_processor");
  std::string where = "post_processor " + t;
  if (t == "Sequence") {
    auto seq = std::make_unique<PostSequence>();
    for (const auto& item : get_array(j, "processors", ctx, where)) {
      if (auto p = make_post_processor(item, ctx)) seq->items.push_back(std::move(p));
    }
    return seq;
  }
  if (t == "ByteLevel") return std::make_unique<PostNoop>();
  if (t == "TemplateProcessing") {
    auto p = std::make_unique<PostTemplate>();
    // special_tokens: {name: {"id": name, "ids": [..], "tokens": [..]}}
    std::map<std::string, std::vector<int32_t>> specials;
    if (auto st = j.find("special_tokens"); st != j.end() && !st->is_null()) {
      if (!st->is_object()) fail(ctx, where + ": \"special_tokens\" must be an object");
      for (auto it = st->begin(); it != st->end(); ++it) {
        const json& ids = get_array(it.value(), "ids", ctx, where + " special token '" + it.key() + "'");
        std::vector<int32_t> v;
        for (const auto& id : ids) {
          if (!id.is_number_integer()) fail(ctx, where + ": special token '" + it.key() + "' has a non-integer id");
          v.push_back(id.get<int32_t>());
        }
        specials[it.key()] = std::move(v);
      }
    }
    auto add_special = [&](const std::string& name) {
      auto s = specials.find(name);
      if (s == specials.end()) fail(ctx, where + ": missing special token '" + name + "' in special_tokens");
      p->single.push_back({false, s->second});
    };
    auto sj = j.find("single");
    if (sj == j.end() || sj->is_null()) fail(ctx, where + ": missing \"single\"");
    if (sj->is_string()) {
      // Template string form: "[CLS] $A [SEP]", pieces optionally ":type_id".
      std::string s = sj->get<std::string>();
      size_t i = 0;
      while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        size_t k = i;
        while (k < s.size() && s[k] != ' ') ++k;
        if (k == i) break;
        std::string w = s.substr(i, k - i);
        i = k;
        std::string name = w.substr(0, w.rfind(':') == std::string::npos || w.rfind(':') == 0 ? w.size() : w.rfind(':'));
        if (name == "$" || name == "$A" || name == "$0")
          p->single.push_back({true, {}});
        else if (!name.empty() && name[0] == '$')
          fail(ctx, where + ": the single template may only use $A, got '" + w + "'");
        else
          add_special(name);
      }
    } else if (sj->is_array()) {
      for (const auto& item : *sj) {
        if (auto sp = item.find("SpecialToken"); sp != item.end()) {
          add_special(get_str(*sp, "id", ctx, where));
        } else if (auto sq = item.find("Sequence"); sq != item.end()) {
          std::string id = get_str(*sq, "id", ctx, where);
          if (id != "A") fail(ctx, where + ": the single template may only use sequence A, got '" + id + "'");
          p->single.push_back({true, {}});
        } else {
          fail(ctx, where + ": template items must be SpecialToken or Sequence");
        }
      }
    } else {
      fail(ctx, where + ": \"single\" must be an array or a string");
    }
    return p;
  }
  fail(ctx, "unsupported post_processor type '" + t + "'");
}

// ---------------------------------------------------------------- decoders

namespace {

class DecSequence : public Decoder {
 public:
  std::vector<std::unique_ptr<Decoder>> items;
  void decode_chain(std::vector<std::string>& t) const override {
    for (const auto& d : items) d->decode_chain(t);
  }
};

class DecByteLevel : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      size_t mark = bytes.size();
      size_t i = 0;
      bool ok = true;
      while (i < t.size()) {
        int b = char_to_byte(next_cp(t, i));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!ok) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class DecByteFallback : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&] {
      if (!pending_count) return;
      if (find_invalid_utf8(pending) == std::string::npos) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending_count; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        auto hex = [](char c) -> int {
          if (c >= '0' && c <= '9') return c - '0';
          if (c >= 'A' && c <= 'F') return c - 'A' + 10;
          if (c >= 'a' && c <= 'f') return c - 'a' + 10;
          return -1;
        };
        int h = hex(t[3]), l = hex(t[4]);
        if (h >= 0 && l >= 0) byte = h * 16 + l;
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class DecReplace : public Decoder {
 public:
  std::unique_ptr<Regex> re;
  std::string content;
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) replace_all(re.get(), t, content);
  }
};

class DecFuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class DecStrip : public Decoder {
 public:
  char32_t content = ' ';
  size_t start = 0, stop = 0;
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, cp)
      size_t i = 0;
      while (i < t.size()) {
        size_t a = i;
        chars.emplace_back(a, next_cp(t, i));
      }
      size_t n = chars.size();
      size_t start_cut = 0;
      for (size_t k = 0; k < n && k < start; ++k) {
        if (chars[k].second != content) break;
        start_cut = k + 1;
      }
      size_t stop_cut = n;
      for (size_t k = 0; k < n && k < stop; ++k) {
        if (chars[n - 1 - k].second != content) break;
        size_t new_cut = n - k - 1;
        if (new_cut < start_cut) break;
        stop_cut = new_cut;
      }
      size_t a = start_cut < n ? chars[start_cut].first : t.size();
      size_t b = stop_cut < n ? chars[stop_cut].first : t.size();
      t = b > a ? t.substr(a, b - a) : std::string();
    }
  }
};

class DecMetaspace : public Decoder {
 public:
  char32_t rep = 0x2581;
  bool prepend = true;  // prepend_scheme != never
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      const std::string& t = tokens[k];
      std::string out;
      out.reserve(t.size());
      size_t i = 0;
      while (i < t.size()) {
        size_t a = i;
        char32_t c = next_cp(t, i);
        if (c == rep) {
          if (!(k == 0 && prepend)) out.push_back(' ');
        } else {
          out.append(t, a, i - a);
        }
      }
      tokens[k] = std::move(out);
    }
  }
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& ctx) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, ctx, "decoder");
  std::string where = "decoder " + t;
  if (t == "Sequence") {
    auto seq = std::make_unique<DecSequence>();
    for (const auto& item : get_array(j, "decoders", ctx, where)) {
      if (auto d = make_decoder(item, ctx)) seq->items.push_back(std::move(d));
    }
    return seq;
  }
  if (t == "ByteLevel") return std::make_unique<DecByteLevel>();
  if (t == "ByteFallback") return std::make_unique<DecByteFallback>();
  if (t == "Fuse") return std::make_unique<DecFuse>();
  if (t == "Replace") {
    auto d = std::make_unique<DecReplace>();
    d->re = get_pattern(j, ctx, where);
    d->content = get_str(j, "content", ctx, where);
    return d;
  }
  if (t == "Strip") {
    auto d = std::make_unique<DecStrip>();
    d->content = get_char(j, "content", ' ', ctx, where);
    d->start = get_uint(j, "start", 0, ctx, where);
    d->stop = get_uint(j, "stop", 0, ctx, where);
    return d;
  }
  if (t == "Metaspace") {
    auto d = std::make_unique<DecMetaspace>();
    d->rep = get_char(j, "replacement", 0x2581, ctx, where);
    auto ps = j.find("prepend_scheme");
    if (ps != j.end() && ps->is_string())
      d->prepend = ps->get<std::string>() != "never";
    else
      d->prepend = get_bool(j, "add_prefix_space", true, ctx, where);
    return d;
  }
  fail(ctx, "unsupported decoder type '" + t + "'");
}

}  // namespace huginn::tok
