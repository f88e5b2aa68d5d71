// KV-cache bytes per token at the full-size shape (E = 5280, r = 32), from
// KVCache::bytes() / bytes_used() after writing entries (no weights needed).
// Numbers for docs/perf_generation.md.
#include <gtest/gtest.h>

#include <cstdio>

#include "huginn/config.h"
#include "huginn/kv_cache.h"

namespace huginn {
namespace {

struct Measured {
  double held, used;
};

Measured per_token(const std::string& strategy, int64_t steps, bool prealloc) {
  ModelConfig c;  // defaults: the full-size Huginn-0125 shape
  const int64_t T = 8, E = c.n_embd;
  CacheOptions o;
  o.strategy = CacheStrategy::parse(strategy);
  if (prealloc) o.max_tokens = T, o.max_steps = steps;
  KVCache cache(c, o);
  std::vector<float> kv(static_cast<size_t>(T * E), 0.5f);
  cache.append_tokens(T);
  const int last = static_cast<int>(c.n_layers_in_prelude + c.n_layers_in_recurrent_block * steps) - 1;
  for (int s = -static_cast<int>(c.n_layers_in_coda); s <= last; ++s) cache.write(s, 0, T, kv.data(), kv.data(), E);
  return {static_cast<double>(cache.bytes()) / T, static_cast<double>(cache.bytes_used()) / T};
}

TEST(CacheBytes, FullSizeShapeAtR32) {
  ModelConfig c;
  ASSERT_EQ(c.n_embd, 5280);
  const double row = 2.0 * 5280 * 4;  // K and V, float32
  auto full = per_token("full", 32, true);
  auto s16 = per_token("compress-s16", 32, true);
  auto lm4s16 = per_token("latest-m4-compress-s16", 32, true);
  // 2 prelude + 4*32 core + 2 coda slots; compress-s16 keeps 16 core slots.
  EXPECT_DOUBLE_EQ(full.used, 132 * row);
  EXPECT_DOUBLE_EQ(full.held, 132 * row);
  EXPECT_DOUBLE_EQ(s16.used, 20 * row);
  EXPECT_DOUBLE_EQ(s16.held, 20 * row);
  EXPECT_DOUBLE_EQ(lm4s16.used, 20 * row);
  std::printf("[kv] full r=32: %.0f bytes/token held, %.0f used\n", full.held, full.used);
  std::printf("[kv] compress-s16 r=32: %.0f bytes/token held, %.0f used\n", s16.held, s16.used);
  // Growing (not preallocated) caches hold whole 64-token pages.
  auto grow = per_token("compress-s16", 32, false);
  EXPECT_DOUBLE_EQ(grow.used, 20 * row);
  EXPECT_DOUBLE_EQ(grow.held, 20 * row * 64 / 8);
}

}  // namespace
}  // namespace huginn
