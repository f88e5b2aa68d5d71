#include "tokenizer/bpe.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "huginn/error.h"
#include "tokenizer/unicode.h"

namespace huginn::tok {

using json = nlohmann::json;

namespace {
[[noreturn]] void fail(const std::string& ctx, const std::string& what) { throw Error(ctx + ": model BPE: " + what); }

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
}  // namespace

BpeModel::BpeModel(const json& m, const std::string& ctx) {
  auto vit = m.find("vocab");
  if (vit == m.end() || vit->is_null()) fail(ctx, "missing \"vocab\"");
  if (!vit->is_object()) fail(ctx, "\"vocab\" must be an object of token -> id");
  int64_t max_id = -1;
  vocab_.reserve(vit->size());
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX)
      fail(ctx, "vocab entry '" + it.key() + "' has an invalid id");
    int32_t id = it->get<int32_t>();
    vocab_.emplace(it.key(), id);
    max_id = std::max<int64_t>(max_id, id);
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [tok, id] : vocab_) {
    if (!id_to_token_[id].empty() && id_to_token_[id] != tok)
      fail(ctx, "vocab id " + std::to_string(id) + " is used by both '" + id_to_token_[id] + "' and '" + tok + "'");
    id_to_token_[id] = tok;
  }

  auto str_or_null = [&](const char* key, std::string& out, bool& has) {
    auto it = m.find(key);
    if (it == m.end() || it->is_null()) return;
    if (!it->is_string()) fail(ctx, std::string("\"") + key + "\" must be a string or null");
    out = it->get<std::string>();
    has = !out.empty();
  };
  str_or_null("continuing_subword_prefix", prefix_, has_prefix_);
  str_or_null("end_of_word_suffix", suffix_, has_suffix_);
  auto flag = [&](const char* key) {
    auto it = m.find(key);
    if (it == m.end() || it->is_null()) return false;
    if (!it->is_boolean()) fail(ctx, std::string("\"") + key + "\" must be a boolean");
    return it->get<bool>();
  };
  fuse_unk_ = flag("fuse_unk");
  byte_fallback_ = flag("byte_fallback");
  ignore_merges_ = flag("ignore_merges");
  if (auto d = m.find("dropout"); d != m.end() && !d->is_null()) {
    if (!d->is_number()) fail(ctx, "\"dropout\" must be a number or null");
    if (d->get<double>() > 0.0) fail(ctx, "dropout is not supported (encoding would be random)");
  }
  if (auto u = m.find("unk_token"); u != m.end() && !u->is_null()) {
    if (!u->is_string()) fail(ctx, "\"unk_token\" must be a string or null");
    auto it = vocab_.find(u->get<std::string>());
    if (it == vocab_.end()) fail(ctx, "unk_token '" + u->get<std::string>() + "' is not in the vocabulary");
    unk_id_ = it->second;
  }

  auto mit = m.find("merges");
  if (mit == m.end() || mit->is_null()) fail(ctx, "missing \"merges\"");
  if (!mit->is_array()) fail(ctx, "\"merges\" must be an array");
  merges_.reserve(mit->size() * 2);
  int32_t rank = 0;
  for (const auto& e : *mit) {
    std::string a, b;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(ctx, "merge " + std::to_string(rank) + " '" + s + "' is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      fail(ctx, "merge " + std::to_string(rank) + " must be \"left right\" or [\"left\", \"right\"]");
    }
    auto ia = vocab_.find(a);
    if (ia == vocab_.end())
      fail(ctx, "merge " + std::to_string(rank) + " ('" + a + "', '" + b + "'): token '" + a + "' is not in the vocabulary");
    auto ib = vocab_.find(b);
    if (ib == vocab_.end())
      fail(ctx, "merge " + std::to_string(rank) + " ('" + a + "', '" + b + "'): token '" + b + "' is not in the vocabulary");
    std::string merged = a;
    if (has_prefix_ && b.compare(0, prefix_.size(), prefix_) == 0)
      merged.append(b, prefix_.size(), std::string::npos);
    else
      merged += b;
    auto im = vocab_.find(merged);
    if (im == vocab_.end())
      fail(ctx, "merge " + std::to_string(rank) + " ('" + a + "', '" + b + "'): merged token '" + merged +
                    "' is not in the vocabulary");
    merges_.emplace(pair_key(ia->second, ib->second), std::make_pair(rank, im->second));
    ++rank;
  }

  if (!has_prefix_ && !has_suffix_) {
    char_ids_.assign(0x800, -1);
    for (char32_t c = 0; c < 0x800; ++c) {
      std::string s;
      append_utf8(s, c);
      if (auto it = vocab_.find(s); it != vocab_.end()) char_ids_[c] = it->second;
    }
  }
}

namespace {
struct Sym {
  int32_t id;
  int32_t prev, next;
  uint32_t start, len;
};
struct Cand {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  bool operator<(const Cand& o) const {  // max-heap: "smaller" = worse
    if (rank != o.rank) return rank > o.rank;
    return pos > o.pos;
  }
};
}  // namespace

void BpeModel::merge_word(std::string_view w, std::vector<BpeToken>& out) const {
  thread_local std::vector<Sym> syms;
  thread_local std::vector<Cand> heap;
  thread_local std::string buf;
  syms.clear();
  heap.clear();

  auto add = [&](int32_t id, uint32_t start, uint32_t len) {
    int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back({id, idx - 1, -1, start, len});
    if (idx > 0) syms[idx - 1].next = idx;
  };
  // pending unknown: (start, len)
  bool unk_pending = false;
  uint32_t unk_start = 0, unk_len = 0;
  size_t i = 0;
  while (i < w.size()) {
    size_t a = i;
    char32_t cp = next_cp(w, i);
    bool first = a == 0, last = i == w.size();
    uint32_t blen = static_cast<uint32_t>(i - a);
    int32_t id = -1;
    std::string_view s = w.substr(a, blen);
    if (!char_ids_.empty() && cp < 0x800) {
      id = char_ids_[cp];
    } else {
      if ((has_prefix_ && !first) || (has_suffix_ && last)) {
        buf.clear();
        if (has_prefix_ && !first) buf += prefix_;
        buf += s;
        if (has_suffix_ && last) buf += suffix_;
        s = buf;
      }
      if (auto it = vocab_.find(s); it != vocab_.end()) id = it->second;
    }
    if (id >= 0) {
      if (unk_pending) {
        add(unk_id_, unk_start, unk_len);
        unk_pending = false;
      }
      add(id, static_cast<uint32_t>(a), blen);
      continue;
    }
    if (byte_fallback_) {
      bool ok = true;
      int32_t ids[16];
      size_t n = 0;
      for (unsigned char b : s) {
        char hex[8];
        static const char* digits = "0123456789ABCDEF";
        hex[0] = '<'; hex[1] = '0'; hex[2] = 'x'; hex[3] = digits[b >> 4]; hex[4] = digits[b & 15]; hex[5] = '>';
        auto it = vocab_.find(std::string_view(hex, 6));
        if (it == vocab_.end() || n >= 16) {
          ok = false;
          break;
        }
        ids[n++] = it->second;
      }
      if (ok) {
        // byte tokens: each gets one byte of the character (the reference
        // gives each a length of 1 byte)
        if (unk_pending) {
          add(unk_id_, unk_start, unk_len);
          unk_pending = false;
        }
        for (size_t k = 0; k < n; ++k)
          add(ids[k], static_cast<uint32_t>(std::min(a + k, i - 1)), static_cast<uint32_t>(k < blen ? 1 : 0));
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (unk_pending && fuse_unk_) {
        unk_len += blen;
      } else {
        if (unk_pending) add(unk_id_, unk_start, unk_len);
        unk_pending = true;
        unk_start = static_cast<uint32_t>(a);
        unk_len = blen;
      }
    }
    // no unk token: the character is dropped, as in the reference
  }
  if (unk_pending) add(unk_id_, unk_start, unk_len);

  const int32_t n = static_cast<int32_t>(syms.size());
  for (int32_t k = 0; k + 1 < n; ++k) {
    auto it = merges_.find(pair_key(syms[k].id, syms[k + 1].id));
    if (it != merges_.end()) heap.push_back({it->second.first, k, it->second.second});
  }
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Cand top = heap.back();
    heap.pop_back();
    Sym& cur = syms[top.pos];
    if (cur.id == -2) continue;  // merged away
    if (cur.next < 0) continue;
    Sym& right = syms[cur.next];
    auto it = merges_.find(pair_key(cur.id, right.id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    int32_t rnext = right.next;
    right.id = -2;
    right.len = 0;
    cur.next = rnext;
    if (rnext >= 0) syms[rnext].prev = top.pos;
    if (cur.prev >= 0) {
      auto p = merges_.find(pair_key(syms[cur.prev].id, cur.id));
      if (p != merges_.end()) {
        heap.push_back({p->second.first, cur.prev, p->second.second});
        std::push_heap(heap.begin(), heap.end());
      }
    }
    if (cur.next >= 0) {
      auto q = merges_.find(pair_key(cur.id, syms[cur.next].id));
      if (q != merges_.end()) {
        heap.push_back({q->second.first, top.pos, q->second.second});
        std::push_heap(heap.begin(), heap.end());
      }
    }
  }
  for (int32_t k = 0; k < n; k = syms[k].next) {
    out.push_back({syms[k].id, syms[k].start, syms[k].start + syms[k].len});
    if (syms[k].next < 0) break;
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<BpeToken>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back({it->second, 0, static_cast<uint32_t>(word.size())});
      return;
    }
  }
  // A single character needs no merging and no cache.
  if (!char_ids_.empty() && word.size() <= 2 && utf8_len(static_cast<unsigned char>(word[0])) == word.size()) {
    size_t i = 0;
    char32_t cp = next_cp(word, i);
    if (cp < 0x800 && char_ids_[cp] >= 0) {
      out.push_back({char_ids_[cp], 0, static_cast<uint32_t>(word.size())});
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWord;
  thread_local std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < kCacheCapacity)
      cache_.emplace(key, std::vector<BpeToken>(out.begin() + static_cast<ptrdiff_t>(first), out.end()));
  }
}

}  // namespace huginn::tok
