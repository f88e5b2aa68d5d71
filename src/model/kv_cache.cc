#include "huginn/kv_cache.h"

#include <algorithm>
#include <charconv>

#include "huginn/error.h"

namespace huginn {

// ---- strategy strings ----

CacheStrategy CacheStrategy::parse(std::string_view s) {
  const std::string orig(s);
  CacheStrategy c;
  auto fail = [&](const std::string& why) -> CacheStrategy {
    throw Error("unknown cache strategy '" + orig + "': " + why +
                " (expected full, latest-m4, available-m4, always-last-m4, skip or randomized, optionally followed by "
                "-compress-sN, -compress-rN or -compress-anchor, or a compress-* alone)");
  };
  std::string_view lookup = s, comp;
  if (auto p = s.find("compress-"); p != std::string_view::npos) {
    comp = s.substr(p + 9);
    lookup = s.substr(0, p);
    if (!lookup.empty()) {
      if (lookup.back() != '-') return fail("expected '-' before 'compress-'");
      lookup.remove_suffix(1);
      if (lookup.empty()) return fail("missing lookup before '-compress-'");
    }
  } else if (lookup.empty()) {
    return fail("empty string");
  }
  if (lookup.empty() || lookup == "full") c.lookup = Lookup::Full;
  else if (lookup == "latest-m4") c.lookup = Lookup::LatestM4;
  else if (lookup == "available-m4") c.lookup = Lookup::AvailableM4;
  else if (lookup == "always-last-m4") c.lookup = Lookup::AlwaysLastM4;
  else if (lookup == "skip") c.lookup = Lookup::Skip;
  else if (lookup == "randomized") c.lookup = Lookup::Randomized;
  else return fail("unknown lookup '" + std::string(lookup) + "'");
  if (s.find("compress-") != std::string_view::npos) {
    if (comp == "anchor") {
      c.compress = Compress::Anchor;
    } else if (comp.size() >= 2 && (comp[0] == 's' || comp[0] == 'r')) {
      int n = 0;
      auto [ptr, ec] = std::from_chars(comp.data() + 1, comp.data() + comp.size(), n);
      if (ec != std::errc() || ptr != comp.data() + comp.size() || n <= 0 || n > 4096)
        return fail("compression size must be a positive integer");
      c.compress = comp[0] == 's' ? Compress::Sliding : Compress::Ratio;
      c.compress_n = n;
    } else {
      return fail("unknown compression '" + std::string(comp) + "'");
    }
  }
  return c;
}

std::string CacheStrategy::to_string() const {
  static const char* kLookup[] = {"full", "latest-m4", "available-m4", "always-last-m4", "skip", "randomized"};
  std::string s = kLookup[static_cast<int>(lookup)];
  switch (compress) {
    case Compress::None: return s;
    case Compress::Sliding: return s + "-compress-s" + std::to_string(compress_n);
    case Compress::Ratio: return s + "-compress-r" + std::to_string(compress_n);
    case Compress::Anchor: return s + "-compress-anchor";
  }
  return s;
}

// ---- storage ----

struct KVCache::Slot {
  std::vector<std::unique_ptr<float[]>> pages;  // each: page_tokens x [K(E) | V(E)]
  std::vector<uint8_t> present;                 // per position
  int64_t n_present = 0;
};

KVCache::KVCache(const ModelConfig& config, CacheOptions opts)
    : config_(config), opts_(opts), rng_(opts.seed) {
  E_ = config.n_embd;
  P_ = static_cast<int>(config.n_layers_in_prelude);
  C_ = static_cast<int>(config.n_layers_in_recurrent_block);
  coda_ = static_cast<int>(config.n_layers_in_coda);
  if (opts_.max_tokens < 0) throw Error("cache max_tokens must be >= 0");
  if (opts_.max_tokens > 0) {
    // Preallocated: one page per slot holds every position.
    page_tokens_ = opts_.max_tokens;
    int64_t steps = opts_.max_steps > 0 ? opts_.max_steps : config.mean_recurrence;
    int last = P_ + C_ * static_cast<int>(steps) - 1;
    for (int s = -coda_; s <= last; ++s) slot(map_step(s), true);
  } else {
    page_tokens_ = 64;
  }
}

KVCache::~KVCache() = default;
KVCache::KVCache(KVCache&&) noexcept = default;
KVCache& KVCache::operator=(KVCache&&) noexcept = default;

int KVCache::map_step(int k) const {
  if (k < P_ || opts_.strategy.compress == CacheStrategy::Compress::None) return k;
  const int n = opts_.strategy.compress_n;
  switch (opts_.strategy.compress) {
    case CacheStrategy::Compress::Sliding: return (k - P_) % n + P_;
    case CacheStrategy::Compress::Ratio: return (k - P_) / n + P_;
    case CacheStrategy::Compress::Anchor: {
      // Keep the first 8 iterations, then recycle one iteration's slots.
      const int anchor = 8 * C_;
      return k - P_ < anchor ? k : P_ + anchor + (k - P_ - anchor) % C_;
    }
    case CacheStrategy::Compress::None: break;
  }
  return k;
}

KVCache::Slot& KVCache::slot(int mapped, bool create) {
  size_t idx = static_cast<size_t>(mapped + coda_);
  if (mapped + coda_ < 0) throw Error("KV cache: step index " + std::to_string(mapped) + " out of range");
  if (idx >= slots_.size()) slots_.resize(idx + 1);
  if (!slots_[idx]) {
    if (!create) throw Error("KV cache: slot missing");
    slots_[idx] = std::make_unique<Slot>();
    if (opts_.max_tokens > 0) {
      slots_[idx]->pages.emplace_back(new float[static_cast<size_t>(page_tokens_ * 2 * E_)]);
      slots_[idx]->present.reserve(static_cast<size_t>(opts_.max_tokens));
    }
  }
  return *slots_[idx];
}

const KVCache::Slot* KVCache::find_slot(int mapped) const {
  int64_t idx = mapped + coda_;
  if (idx < 0 || idx >= static_cast<int64_t>(slots_.size())) return nullptr;
  return slots_[static_cast<size_t>(idx)].get();
}

bool KVCache::has(int mapped, int64_t pos) const {
  const Slot* s = find_slot(mapped);
  return s && pos < static_cast<int64_t>(s->present.size()) && s->present[static_cast<size_t>(pos)];
}

const float* KVCache::row(int mapped, int64_t pos) const {
  const Slot* s = find_slot(mapped);
  return s->pages[static_cast<size_t>(pos / page_tokens_)].get() + (pos % page_tokens_) * 2 * E_;
}

int KVCache::core_layer(int mapped) const { return ((mapped - P_) % C_ + C_) % C_; }

size_t KVCache::bytes() const {
  size_t b = 0;
  for (const auto& s : slots_)
    if (s) b += s->pages.size() * static_cast<size_t>(page_tokens_ * 2 * E_) * sizeof(float);
  return b;
}

size_t KVCache::bytes_used() const {
  size_t n = 0;
  for (const auto& s : slots_)
    if (s) n += static_cast<size_t>(s->n_present);
  return n * static_cast<size_t>(2 * E_) * sizeof(float);
}

int64_t KVCache::append_tokens(int64_t n) {
  if (opts_.max_tokens > 0 && length_ + n > opts_.max_tokens)
    throw Error("KV cache is full: " + std::to_string(length_) + " + " + std::to_string(n) +
                " tokens exceed its preallocated " + std::to_string(opts_.max_tokens));
  int64_t start = length_;
  length_ += n;
  return start;
}

void KVCache::write(int step_idx, int64_t pos0, int64_t n, const float* k, const float* v, int64_t stride) {
  const int mapped = map_step(step_idx);
  Slot& s = slot(mapped, true);
  if (pos0 + n > length_) throw Error("KV cache: write past the reserved positions");
  while (static_cast<int64_t>(s.pages.size()) * page_tokens_ < pos0 + n) {
    if (opts_.max_tokens > 0) throw Error("KV cache: preallocated storage exhausted");
    s.pages.emplace_back(new float[static_cast<size_t>(page_tokens_ * 2 * E_)]);
  }
  if (static_cast<int64_t>(s.present.size()) < pos0 + n) s.present.resize(static_cast<size_t>(pos0 + n), 0);
  for (int64_t t = 0; t < n; ++t) {
    int64_t p = pos0 + t;
    float* dst = s.pages[static_cast<size_t>(p / page_tokens_)].get() + (p % page_tokens_) * 2 * E_;
    std::copy(k + t * stride, k + t * stride + E_, dst);
    std::copy(v + t * stride, v + t * stride + E_, dst + E_);
    if (!s.present[static_cast<size_t>(p)]) {
      s.present[static_cast<size_t>(p)] = 1;
      ++s.n_present;
    }
  }
}

int64_t KVCache::gather(int step_idx, std::vector<const float*>& k, std::vector<const float*>& v) {
  using L = CacheStrategy::Lookup;
  const int mapped = map_step(step_idx);
  const Slot* s = find_slot(mapped);
  k.clear();
  v.clear();
  auto push = [&](int m, int64_t p) {
    const float* r = row(m, p);
    k.push_back(r);
    v.push_back(r + E_);
  };
  const bool complete = s && s->n_present == length_;
  const L lookup = opts_.strategy.lookup;
  if (complete || lookup == L::Full || lookup == L::Skip) {
    // Every present entry of this slot, in position order.
    for (int64_t p = 0; p < length_; ++p)
      if (has(mapped, p)) push(mapped, p);
    return static_cast<int64_t>(k.size());
  }
  const bool core = mapped >= P_;
  const int layer = core ? core_layer(mapped) : 0;
  // Latest slot <= `upto` of the same core layer that holds position p.
  auto latest_same_layer = [&](int64_t p, int upto) -> int {
    for (int m = upto; m >= P_; --m)
      if (core_layer(m) == layer && has(m, p)) return m;
    throw Error("KV cache: position " + std::to_string(p) + " has no entry for core layer " + std::to_string(layer) +
                " at or before step " + std::to_string(upto) + " (lookup " + opts_.strategy.to_string() + ")");
  };
  const int max_slot = static_cast<int>(slots_.size()) - coda_ - 1;
  for (int64_t p = 0; p < length_; ++p) {
    int m = mapped;
    if (core && lookup == L::AlwaysLastM4) {
      // The reference takes, for every position, the last slot of this core
      // layer that the position has, even when it has the current one.
      m = latest_same_layer(p, max_slot);
    } else if (!has(mapped, p)) {
      if (!core) {
        // Prelude/coda entries are always written; the reference falls back to slot 0.
        m = 0;
        if (!has(0, p)) throw Error("KV cache: position " + std::to_string(p) + " has no prelude entry");
      } else {
        switch (lookup) {
          case L::LatestM4:
          case L::AvailableM4: m = latest_same_layer(p, mapped); break;
          case L::AlwaysLastM4: m = latest_same_layer(p, max_slot); break;
          case L::Randomized: {
            std::vector<int> cands;
            for (int c = P_; c <= mapped; ++c)
              if (core_layer(c) == layer && has(c, p)) cands.push_back(c);
            if (cands.empty()) m = latest_same_layer(p, mapped);  // throws with a clear message
            else m = cands[std::uniform_int_distribution<size_t>(0, cands.size() - 1)(rng_)];
            break;
          }
          case L::Full:
          case L::Skip: break;
        }
      }
    } else if (lookup == L::Randomized && core) {
      // Once any entry is missing, the reference draws every position's slot at
      // random among the same-layer slots that hold it.
      std::vector<int> cands;
      for (int c = P_; c <= mapped; ++c)
        if (core_layer(c) == layer && has(c, p)) cands.push_back(c);
      m = cands[std::uniform_int_distribution<size_t>(0, cands.size() - 1)(rng_)];
    }
    push(m, p);
  }
  return static_cast<int64_t>(k.size());
}

void KVCache::drop_last(int64_t n) {
  if (n < 0 || n > length_)
    throw Error("cannot drop " + std::to_string(n) + " tokens from a cache of " + std::to_string(length_));
  length_ -= n;
  for (auto& s : slots_) {
    if (!s) continue;
    for (int64_t p = length_; p < static_cast<int64_t>(s->present.size()); ++p)
      if (s->present[static_cast<size_t>(p)]) --s->n_present;
    if (static_cast<int64_t>(s->present.size()) > length_) s->present.resize(static_cast<size_t>(length_));
    if (opts_.max_tokens == 0) {
      // Release pages past the end.
      size_t keep = static_cast<size_t>((length_ + page_tokens_ - 1) / page_tokens_);
      if (s->pages.size() > keep) s->pages.resize(keep);
    }
  }
}

void KVCache::clear() { drop_last(length_); }

}  // namespace huginn
