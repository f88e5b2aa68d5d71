// The recurrent-depth KV cache: strategy strings, step folding (compression),
// which rows each lookup returns when tokens ran different numbers of steps,
// roll-back, memory accounting, the preallocated variant and pointer
// stability. Entries are written by hand: K row = value, V row = -value, with
// value = 1000 * (step + 10) + position, so every gathered row tells which
// slot and position it came from.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "throws_with.h"
#include "huginn/error.h"
#include "huginn/kv_cache.h"

namespace huginn {
namespace {

using Lookup = CacheStrategy::Lookup;
using Compress = CacheStrategy::Compress;

using test::ThrowsWith;

constexpr int64_t kE = 8;

ModelConfig small_config() {
  ModelConfig c;
  c.n_embd = kE;
  c.n_heads = 2;
  c.intermediate_size = 16;
  c.vocab_size = 32;
  c.block_size = 64;
  c.mean_recurrence = 4;
  return c;
}

float code(int step, int64_t pos) { return static_cast<float>(1000 * (step + 10) + pos); }

// Writes the entry of `step` for `pos` (which must be reserved already).
void put(KVCache& c, int step, int64_t pos) {
  std::vector<float> k(kE, code(step, pos)), v(kE, -code(step, pos));
  c.write(step, pos, 1, k.data(), v.data(), kE);
}

// Runs one token through `iterations` core iterations (prelude 0,1; core
// 2..; coda -1,-2), as an adaptive call that exited after that many steps.
void token(KVCache& c, int iterations) {
  int64_t pos = c.append_tokens(1);
  put(c, 0, pos);
  put(c, 1, pos);
  for (int s = 2; s < 2 + 4 * iterations; ++s) put(c, s, pos);
  put(c, -1, pos);
  put(c, -2, pos);
}

struct Row {
  int step;
  int64_t pos;
  bool operator==(const Row&) const = default;
};
std::ostream& operator<<(std::ostream& o, const Row& r) { return o << "{step " << r.step << ", pos " << r.pos << "}"; }

std::vector<Row> gather(KVCache& c, int step) {
  std::vector<const float*> k, v;
  int64_t n = c.gather(step, k, v);
  EXPECT_EQ(static_cast<size_t>(n), k.size());
  EXPECT_EQ(k.size(), v.size());
  std::vector<Row> rows;
  for (size_t i = 0; i < k.size(); ++i) {
    const int code_i = static_cast<int>(k[i][0]);
    EXPECT_EQ(v[i][0], -k[i][0]);
    EXPECT_EQ(k[i][kE - 1], k[i][0]);
    EXPECT_EQ(v[i], k[i] + kE);
    rows.push_back({code_i / 1000 - 10, code_i % 1000});
  }
  return rows;
}

TEST(CacheStrategy, ParsesEveryReferenceString) {
  struct Case {
    const char* s;
    Lookup lookup;
    Compress compress;
    int n;
    const char* canonical;
  };
  const Case cases[] = {
      {"full", Lookup::Full, Compress::None, 0, "full"},
      {"latest-m4", Lookup::LatestM4, Compress::None, 0, "latest-m4"},
      {"available-m4", Lookup::AvailableM4, Compress::None, 0, "available-m4"},
      {"always-last-m4", Lookup::AlwaysLastM4, Compress::None, 0, "always-last-m4"},
      {"skip", Lookup::Skip, Compress::None, 0, "skip"},
      {"randomized", Lookup::Randomized, Compress::None, 0, "randomized"},
      {"compress-s4", Lookup::Full, Compress::Sliding, 4, "full-compress-s4"},
      {"compress-s16", Lookup::Full, Compress::Sliding, 16, "full-compress-s16"},
      {"compress-r2", Lookup::Full, Compress::Ratio, 2, "full-compress-r2"},
      {"compress-anchor", Lookup::Full, Compress::Anchor, 0, "full-compress-anchor"},
      {"latest-m4-compress-s16", Lookup::LatestM4, Compress::Sliding, 16, "latest-m4-compress-s16"},
      {"latest-m4-compress-s4", Lookup::LatestM4, Compress::Sliding, 4, "latest-m4-compress-s4"},
      {"latest-m4-compress-r3", Lookup::LatestM4, Compress::Ratio, 3, "latest-m4-compress-r3"},
      {"latest-m4-compress-anchor", Lookup::LatestM4, Compress::Anchor, 0, "latest-m4-compress-anchor"},
      {"available-m4-compress-s8", Lookup::AvailableM4, Compress::Sliding, 8, "available-m4-compress-s8"},
      {"always-last-m4-compress-r4", Lookup::AlwaysLastM4, Compress::Ratio, 4, "always-last-m4-compress-r4"},
      {"skip-compress-s2", Lookup::Skip, Compress::Sliding, 2, "skip-compress-s2"},
      {"randomized-compress-anchor", Lookup::Randomized, Compress::Anchor, 0, "randomized-compress-anchor"},
      {"full-compress-s1", Lookup::Full, Compress::Sliding, 1, "full-compress-s1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.s);
    CacheStrategy s = CacheStrategy::parse(c.s);
    EXPECT_EQ(s.lookup, c.lookup);
    EXPECT_EQ(s.compress, c.compress);
    EXPECT_EQ(s.compress_n, c.n);
    EXPECT_EQ(s.to_string(), c.canonical);
    CacheStrategy again = CacheStrategy::parse(s.to_string());
    EXPECT_EQ(again.lookup, s.lookup);
    EXPECT_EQ(again.compress, s.compress);
    EXPECT_EQ(again.compress_n, s.compress_n);
  }
}

TEST(CacheStrategy, RejectsInvalidStringsNamingThem) {
  for (const char* s : {"", "Full", "latest", "latest-m5", "latest-m4-", "m4", "compress-", "compress-s", "compress-s0",
                        "compress-s-1", "compress-sx", "compress-x4", "compress-s4x", "compress-s 4", "compress-anchors",
                        "compress-r", "latest-m4compress-s4", "-compress-s4", "latest-m4--compress-s4",
                        "compress-s99999999999", "compress-s4-compress-s4", "skip-compress-", "full ", " full"}) {
    EXPECT_TRUE(ThrowsWith([&] { CacheStrategy::parse(s); }, {"'" + std::string(s) + "'"})) << "'" << s << "'";
  }
}

TEST(KVCacheMapStep, Compression) {
  const ModelConfig cfg = small_config();
  auto cache = [&](const char* s) { return KVCache(cfg, CacheOptions{CacheStrategy::parse(s)}); };
  KVCache none = cache("full"), s4 = cache("compress-s4"), s16 = cache("latest-m4-compress-s16"), r2 = cache("compress-r2"),
          r3 = cache("compress-r3"), anchor = cache("compress-anchor");
  for (int k = -2; k < 2; ++k) {
    // Prelude and coda slots are never folded.
    for (KVCache* c : {&none, &s4, &s16, &r2, &r3, &anchor}) EXPECT_EQ(c->map_step(k), k);
  }
  for (int k = 2; k < 300; ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(none.map_step(k), k);
    EXPECT_EQ(s4.map_step(k), (k - 2) % 4 + 2);
    EXPECT_EQ(s16.map_step(k), (k - 2) % 16 + 2);
    EXPECT_EQ(r2.map_step(k), (k - 2) / 2 + 2);
    EXPECT_EQ(r3.map_step(k), (k - 2) / 3 + 2);
    EXPECT_EQ(anchor.map_step(k), k < 34 ? k : 34 + (k - 34) % 4);
  }
  // The reference's examples.
  EXPECT_EQ(s4.map_step(6), 2);
  EXPECT_EQ(s4.map_step(9), 5);
  EXPECT_EQ(r2.map_step(5), 3);
  EXPECT_EQ(anchor.map_step(33), 33);
  EXPECT_EQ(anchor.map_step(38), 34);
  EXPECT_EQ(anchor.map_step(41), 37);
}

TEST(KVCache, FullLookupAllPresent) {
  KVCache c(small_config());
  EXPECT_EQ(c.length(), 0);
  EXPECT_TRUE(gather(c, 2).empty());
  for (int t = 0; t < 3; ++t) token(c, 2);
  EXPECT_EQ(c.length(), 3);
  for (int step : {-2, -1, 0, 1, 2, 5, 9}) {
    auto rows = gather(c, step);
    ASSERT_EQ(rows.size(), 3u) << step;
    for (int64_t p = 0; p < 3; ++p) EXPECT_EQ(rows[static_cast<size_t>(p)], (Row{step, p}));
  }
  // A slot nobody wrote.
  EXPECT_TRUE(gather(c, 40).empty());
}

// Tokens that exited after 3, 1 and 2 iterations; then a 4th token at
// iteration 1 and 2 of its own call.
class MixedSteps : public testing::TestWithParam<const char*> {
 protected:
  KVCache make() {
    KVCache c(small_config(), CacheOptions{CacheStrategy::parse(GetParam())});
    token(c, 3);  // pos 0: core steps 2..13
    token(c, 1);  // pos 1: 2..5
    token(c, 2);  // pos 2: 2..9
    // pos 3 is in its call: prelude and iteration 0 done, iterations 1 and 2 being written.
    int64_t p = c.append_tokens(1);
    put(c, 0, p);
    put(c, 1, p);
    for (int s = 2; s < 14; ++s) put(c, s, p);
    return c;
  }
};

TEST_P(MixedSteps, WhichRowsAreGathered) {
  KVCache c = make();
  const std::string s = GetParam();
  // Every token has the first iteration: all strategies see the plain slot.
  EXPECT_EQ(gather(c, 3), (std::vector<Row>{{3, 0}, {3, 1}, {3, 2}, {3, 3}}));
  EXPECT_EQ(gather(c, 0), (std::vector<Row>{{0, 0}, {0, 1}, {0, 2}, {0, 3}}));
  auto at6 = gather(c, 6);    // iteration 1, layer 0: pos 1 lacks it
  auto at11 = gather(c, 11);  // iteration 2, layer 1: pos 1 and 2 lack it
  if (s == "full" || s == "skip") {
    EXPECT_EQ(at6, (std::vector<Row>{{6, 0}, {6, 2}, {6, 3}}));
    EXPECT_EQ(at11, (std::vector<Row>{{11, 0}, {11, 3}}));
  } else if (s == "latest-m4" || s == "available-m4") {
    EXPECT_EQ(at6, (std::vector<Row>{{6, 0}, {2, 1}, {6, 2}, {6, 3}}));
    EXPECT_EQ(at11, (std::vector<Row>{{11, 0}, {3, 1}, {7, 2}, {11, 3}}));
  } else if (s == "always-last-m4") {
    // Reference: every position uses its last slot of the layer (over all slots).
    EXPECT_EQ(at6, (std::vector<Row>{{10, 0}, {2, 1}, {6, 2}, {10, 3}}));
    EXPECT_EQ(at11, (std::vector<Row>{{11, 0}, {3, 1}, {7, 2}, {11, 3}}));
  } else if (s == "randomized") {
    for (int rep = 0; rep < 20; ++rep) {
      auto r = gather(c, 10);  // layer 0, iteration 2
      ASSERT_EQ(r.size(), 4u);
      const std::set<int> allowed[4] = {{2, 6, 10}, {2}, {2, 6}, {2, 6, 10}};
      for (size_t p = 0; p < 4; ++p) {
        EXPECT_EQ(r[p].pos, static_cast<int64_t>(p));
        EXPECT_TRUE(allowed[p].count(r[p].step)) << r[p];
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Lookups, MixedSteps,
                         testing::Values("full", "skip", "latest-m4", "available-m4", "always-last-m4", "randomized"),
                         [](const testing::TestParamInfo<const char*>& i) {
                           std::string n = i.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(KVCache, LatestM4FallsBackForPreludeAndFailsClearly) {
  KVCache c(small_config(), CacheOptions{CacheStrategy::parse("latest-m4")});
  token(c, 1);
  int64_t p = c.append_tokens(1);
  put(c, 0, p);  // pos 1 has slot 0 only
  put(c, 2, p);
  // Slot 1 lacks pos 1: prelude/coda fall back to slot 0 (as the reference).
  EXPECT_EQ(gather(c, 1), (std::vector<Row>{{1, 0}, {0, 1}}));
  // Core slot 3 (layer 1): pos 1 has no layer-1 entry at all.
  EXPECT_TRUE(ThrowsWith([&] { gather(c, 3); }, {"position 1", "core layer 1"}));
}

TEST(KVCache, CompressS4Overwrites) {
  KVCache c(small_config(), CacheOptions{CacheStrategy::parse("compress-s4")});
  token(c, 3);
  token(c, 2);
  // Later iterations overwrite earlier ones: slot 2 holds step 10 for pos 0 and step 6 for pos 1.
  auto rows = gather(c, 2);
  EXPECT_EQ(rows, (std::vector<Row>{{10, 0}, {6, 1}}));
  EXPECT_EQ(gather(c, 14), rows);  // step 14 folds onto slot 2 too
  EXPECT_EQ(gather(c, -1), (std::vector<Row>{{-1, 0}, {-1, 1}}));
  // 4 prelude/coda slots + 4 core slots, 2 tokens each.
  EXPECT_EQ(c.bytes_used(), 8u * 2 * 2 * kE * sizeof(float));
}

TEST(KVCache, DropLastAndClear) {
  KVCache c(small_config());
  for (int t = 0; t < 5; ++t) token(c, 2);
  const size_t per_token = 12u * 2 * kE * sizeof(float);  // 4 + 8 slots
  EXPECT_EQ(c.bytes_used(), 5 * per_token);
  c.drop_last(2);
  EXPECT_EQ(c.length(), 3);
  EXPECT_EQ(c.bytes_used(), 3 * per_token);
  EXPECT_EQ(gather(c, 9), (std::vector<Row>{{9, 0}, {9, 1}, {9, 2}}));
  // Positions 3.. are free again: new entries replace the dropped ones.
  token(c, 1);
  EXPECT_EQ(c.length(), 4);
  EXPECT_EQ(gather(c, 5).size(), 4u);
  EXPECT_EQ(gather(c, 6), (std::vector<Row>{{6, 0}, {6, 1}, {6, 2}}));  // full: pos 3 has no step 6
  EXPECT_TRUE(ThrowsWith([&] { c.drop_last(5); }, {"drop 5", "4"}));
  EXPECT_TRUE(ThrowsWith([&] { c.drop_last(-1); }, {"drop -1"}));
  c.drop_last(0);
  EXPECT_EQ(c.length(), 4);
  c.clear();
  EXPECT_EQ(c.length(), 0);
  EXPECT_EQ(c.bytes_used(), 0u);
  EXPECT_TRUE(gather(c, 2).empty());
  token(c, 1);
  EXPECT_EQ(gather(c, 2), (std::vector<Row>{{2, 0}}));
}

TEST(KVCache, BytesGrowByPages) {
  KVCache c(small_config());
  EXPECT_EQ(c.bytes(), 0u);
  EXPECT_EQ(c.bytes_used(), 0u);
  token(c, 1);  // 8 slots
  const size_t page = 64u * 2 * kE * sizeof(float);
  EXPECT_EQ(c.bytes(), 8 * page);
  EXPECT_EQ(c.bytes_used(), 8u * 2 * kE * sizeof(float));
  for (int t = 1; t < 65; ++t) token(c, 1);
  EXPECT_EQ(c.bytes(), 16 * page);  // second page per slot
  EXPECT_GE(c.bytes(), c.bytes_used());
  c.drop_last(1);  // back to 64 tokens: second pages released
  EXPECT_EQ(c.bytes(), 8 * page);
}

TEST(KVCache, WriteChecksRange) {
  KVCache c(small_config());
  c.append_tokens(2);
  std::vector<float> k(3 * kE), v(3 * kE);
  EXPECT_TRUE(ThrowsWith([&] { c.write(2, 0, 3, k.data(), v.data(), kE); }, {"past the reserved"}));
  EXPECT_TRUE(ThrowsWith([&] { c.write(2, 2, 1, k.data(), v.data(), kE); }, {"past the reserved"}));
  EXPECT_TRUE(ThrowsWith([&] { c.write(-3, 0, 1, k.data(), v.data(), kE); }, {"-3"}));
  // Rows may be strided (a packed [K|V|...] activation).
  std::vector<float> packed(2 * 3 * kE);
  for (int t = 0; t < 2; ++t)
    for (int i = 0; i < kE; ++i) {
      packed[static_cast<size_t>(t * 3 * kE + i)] = code(2, t);
      packed[static_cast<size_t>(t * 3 * kE + kE + i)] = -code(2, t);
    }
  c.write(2, 0, 2, packed.data(), packed.data() + kE, 3 * kE);
  EXPECT_EQ(gather(c, 2), (std::vector<Row>{{2, 0}, {2, 1}}));
}

TEST(KVCache, Preallocated) {
  CacheOptions o;
  o.max_tokens = 10;
  o.max_steps = 2;
  KVCache c(small_config(), o);
  const size_t slot_bytes = 10u * 2 * kE * sizeof(float);
  EXPECT_EQ(c.bytes(), 12 * slot_bytes);  // 2 prelude + 2 coda + 2 x 4 core, reserved up front
  EXPECT_EQ(c.bytes_used(), 0u);
  for (int t = 0; t < 9; ++t) token(c, 2);
  EXPECT_EQ(c.bytes(), 12 * slot_bytes);
  EXPECT_EQ(gather(c, 9).size(), 9u);
  EXPECT_TRUE(ThrowsWith([&] { c.append_tokens(2); }, {"full", "9", "10"}));
  EXPECT_EQ(c.length(), 9);  // a refused append reserves nothing
  token(c, 3);               // more steps than max_steps: the slot is created on demand
  EXPECT_EQ(c.length(), 10);
  EXPECT_EQ(gather(c, 13), (std::vector<Row>{{13, 9}}));
  EXPECT_TRUE(ThrowsWith([&] { c.append_tokens(1); }, {"full"}));
  c.drop_last(3);
  EXPECT_EQ(c.bytes(), 16 * slot_bytes);  // the 4 slots of iteration 3 were added on demand; pages are kept  // preallocated pages are kept
  c.append_tokens(3);
  EXPECT_EQ(c.length(), 10);

  // Compressed: only the folded slots are reserved.
  CacheOptions oc;
  oc.strategy = CacheStrategy::parse("compress-s4");
  oc.max_tokens = 10;
  oc.max_steps = 32;
  KVCache cc(small_config(), oc);
  EXPECT_EQ(cc.bytes(), 8 * slot_bytes);
  EXPECT_TRUE(ThrowsWith([&] { KVCache bad(small_config(), CacheOptions{{}, -1}); }, {"max_tokens"}));
}

// Appending tokens never moves the rows already stored: a pointer taken early
// still points at the same data after many appends.
void check_pointer_stability(CacheOptions o, int tokens) {
  KVCache c(small_config(), o);
  token(c, 1);
  std::vector<const float*> k0, v0;
  c.gather(2, k0, v0);
  ASSERT_EQ(k0.size(), 1u);
  const float* row = k0[0];
  const float* vrow = v0[0];
  for (int t = 1; t < tokens; ++t) token(c, 2);
  std::vector<const float*> k, v;
  c.gather(2, k, v);
  ASSERT_EQ(k.size(), static_cast<size_t>(tokens));
  EXPECT_EQ(k[0], row);
  EXPECT_EQ(v[0], vrow);
  EXPECT_EQ(row[0], code(2, 0));
  EXPECT_EQ(vrow[kE - 1], -code(2, 0));
  for (int t = 0; t < tokens; ++t) EXPECT_EQ(k[static_cast<size_t>(t)][0], code(2, t));
}

TEST(KVCache, AppendingNeverMovesRows) {
  check_pointer_stability({}, 700);
  CacheOptions o;
  o.max_tokens = 300;
  o.max_steps = 2;
  check_pointer_stability(o, 300);
}

TEST(KVCache, Move) {
  KVCache a(small_config());
  token(a, 1);
  KVCache b(std::move(a));
  EXPECT_EQ(b.length(), 1);
  EXPECT_EQ(gather(b, 5), (std::vector<Row>{{5, 0}}));
  KVCache c(small_config());
  c = std::move(b);
  EXPECT_EQ(gather(c, -2), (std::vector<Row>{{-2, 0}}));
}

}  // namespace
}  // namespace huginn
