// Samplers, generation_config.json parsing and the exit criteria.
//
// Statistical checks: N independent draws from a fixed distribution p give
// counts whose frequency f_i has standard deviation sqrt(p_i (1 - p_i) / N).
// We require |f_i - p_i| <= 5 sigma_i + 1e-9 for every id: for one id a
// normal tail beyond 5 sigma has probability 5.7e-7, so with at most 16 ids
// a correct sampler fails with probability < 1e-5 (and the seeds are fixed, so
// the test is deterministic anyway). A sampler that used the unfiltered or a
// wrongly filtered distribution moves some frequency by >= 0.02, which is
// > 20 sigma at N = 200000. Excluded ids (p = 0) must never be drawn.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "huginn/error.h"
#include "huginn/generate.h"
#include "huginn/generation_config.h"
#include "huginn/sampler.h"

namespace huginn {
namespace {

const std::vector<float> kLogits = {1.0f, 2.5f, 0.3f, -1.0f, 2.0f, 0.0f, 1.7f, -0.5f, 2.4f, 0.9f};

std::vector<double> softmax(const std::vector<float>& l, double t = 1.0) {
  std::vector<double> p(l.size());
  double mx = -1e300, s = 0;
  for (float x : l) mx = std::max(mx, x / t);
  for (size_t i = 0; i < l.size(); ++i) s += p[i] = std::exp(l[i] / t - mx);
  for (double& x : p) x /= s;
  return p;
}

void expect_dist_near(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "id " << i;
}

// Draws N samples and checks them against p = sampling_distribution(...).
void check_draws(const SamplingParams& sp, uint64_t seed) {
  const std::vector<double> p = sampling_distribution(kLogits, sp);
  Sampler s(sp, seed);
  const int N = 200000;
  std::vector<int> count(kLogits.size(), 0);
  for (int i = 0; i < N; ++i) ++count[static_cast<size_t>(s.sample(kLogits, {}))];
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(count[i], 0) << "excluded id " << i << " was drawn (" << sp.to_string() << ")";
      continue;
    }
    const double f = static_cast<double>(count[i]) / N;
    const double sigma = std::sqrt(p[i] * (1 - p[i]) / N);
    EXPECT_LE(std::fabs(f - p[i]), 5 * sigma + 1e-9) << "id " << i << " (" << sp.to_string() << ")";
  }
}

SamplingParams sampled(float t, int k = 0, float top_p = 1.0f, float min_p = 0.0f) {
  SamplingParams p;
  p.do_sample = true;
  p.temperature = t;
  p.top_k = k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

TEST(Sampler, DistributionTemperature) {
  expect_dist_near(sampling_distribution(kLogits, sampled(0.7f)), softmax(kLogits, static_cast<double>(0.7f)));
  expect_dist_near(sampling_distribution(kLogits, sampled(1.0f)), softmax(kLogits));
}

TEST(Sampler, DistributionTopK) {
  auto p = sampling_distribution(kLogits, sampled(1.0f, 3));
  // ids 1 (2.5), 8 (2.4), 4 (2.0) survive, renormalised.
  auto full = softmax(kLogits);
  const double z = full[1] + full[8] + full[4];
  for (size_t i = 0; i < p.size(); ++i) {
    const bool keep = i == 1 || i == 8 || i == 4;
    EXPECT_NEAR(p[i], keep ? full[i] / z : 0.0, 1e-12) << i;
  }
  // Ties at the k-th value are kept (torch.where(probs < kth)).
  std::vector<float> tied = {1.0f, 3.0f, 2.0f, 2.0f, 0.0f};
  auto q = sampling_distribution(tied, sampled(1.0f, 2));
  EXPECT_GT(q[1], 0);
  EXPECT_GT(q[2], 0);
  EXPECT_GT(q[3], 0);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[4], 0);
}

TEST(Sampler, DistributionTopP) {
  // probs 0.5, 0.3, 0.2: cumulative 0.5, 0.8, 1.0. The reference drops every
  // entry whose cumulative sum exceeds top_p (the crossing one too) but
  // always keeps the first.
  std::vector<float> l = {static_cast<float>(std::log(0.5)), static_cast<float>(std::log(0.3)),
                          static_cast<float>(std::log(0.2))};
  auto p = sampling_distribution(l, sampled(1.0f, 0, 0.85f));
  EXPECT_NEAR(p[0], 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(p[1], 0.3 / 0.8, 1e-6);
  EXPECT_EQ(p[2], 0);
  p = sampling_distribution(l, sampled(1.0f, 0, 0.6f));
  EXPECT_NEAR(p[0], 1.0, 1e-12);
  EXPECT_EQ(p[1], 0);
  p = sampling_distribution(l, sampled(1.0f, 0, 0.1f));  // the top one is always kept
  EXPECT_NEAR(p[0], 1.0, 1e-12);
}

TEST(Sampler, DistributionMinP) {
  auto full = softmax(kLogits);
  auto p = sampling_distribution(kLogits, sampled(1.0f, 0, 1.0f, 0.5f));
  const double mx = *std::max_element(full.begin(), full.end());
  double z = 0;
  for (double x : full) z += x >= 0.5 * mx ? x : 0;
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], full[i] >= 0.5 * mx ? full[i] / z : 0.0, 1e-12) << i;
}

TEST(Sampler, DrawsMatchFilteredDistribution) {
  check_draws(sampled(1.0f), 1);
  check_draws(sampled(0.6f), 2);
  check_draws(sampled(1.3f, 4), 3);
  check_draws(sampled(1.0f, 0, 0.7f), 4);
  check_draws(sampled(1.0f, 0, 1.0f, 0.3f), 5);
  check_draws(sampled(0.8f, 6, 0.9f, 0.1f), 6);
}

TEST(Sampler, FilteredIdsNeverDrawn) {
  // Many seeds, few draws each: top-k / top-p / min-p exclusions hold for every draw.
  for (uint64_t seed = 0; seed < 50; ++seed) {
    for (const auto& sp : {sampled(2.0f, 2), sampled(2.0f, 0, 0.5f), sampled(2.0f, 0, 1.0f, 0.8f)}) {
      auto p = sampling_distribution(kLogits, sp);
      Sampler s(sp, seed);
      for (int i = 0; i < 200; ++i) {
        int32_t id = s.sample(kLogits, {});
        ASSERT_GT(p[static_cast<size_t>(id)], 0) << sp.to_string() << " drew id " << id;
      }
    }
  }
}

TEST(Sampler, SeededAndReproducible) {
  Sampler a(sampled(1.0f), 42), b(sampled(1.0f), 42), c(sampled(1.0f), 43);
  std::vector<int32_t> x, y, z;
  for (int i = 0; i < 64; ++i) {
    x.push_back(a.sample(kLogits, {}));
    y.push_back(b.sample(kLogits, {}));
    z.push_back(c.sample(kLogits, {}));
  }
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
}

TEST(Sampler, GreedyAndTemperatureZero) {
  Sampler g(SamplingParams{}, 0);
  EXPECT_EQ(g.sample(kLogits, {}), 1);
  Sampler t0(sampled(0.0f), 0);  // temperature 0: greedy
  for (int i = 0; i < 10; ++i) EXPECT_EQ(t0.sample(kLogits, {}), 1);
  EXPECT_EQ(argmax(std::vector<float>{1, 3, 3, 2}), 1);  // first of ties
}

TEST(Sampler, RepetitionPenalty) {
  std::vector<float> l = {2.0f, -2.0f, 0.5f, 1.0f, 0.0f};
  std::vector<int32_t> ctx = {0, 1, 1, 4, 99, -3};
  apply_repetition_penalty(l, ctx, 2.0f);
  EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 0.5f, 1.0f, 0.0f}));  // each id once, out-of-range ignored
  std::vector<float> m = {2.0f, -2.0f};
  apply_repetition_penalty(m, std::vector<int32_t>{0, 1}, 0.5f);  // < 1 rewards repeats
  EXPECT_EQ(m, (std::vector<float>{4.0f, -1.0f}));
  // Greedy with a penalty: the repeated best id loses to the runner-up.
  SamplingParams sp;
  sp.repetition_penalty = 1.5f;
  Sampler s(sp, 0);
  EXPECT_EQ(s.sample(kLogits, std::vector<int32_t>{1}), 8);  // 2.5/1.5 < 2.4
  EXPECT_EQ(s.sample(kLogits, {}), 1);
}

TEST(Sampler, Validation) {
  EXPECT_THROW(Sampler(sampled(-1.0f)), Error);
  EXPECT_THROW(Sampler(sampled(1.0f, -1)), Error);
  EXPECT_THROW(Sampler(sampled(1.0f, 0, 0.0f)), Error);
  EXPECT_THROW(Sampler(sampled(1.0f, 0, 1.5f)), Error);
  EXPECT_THROW(Sampler(sampled(1.0f, 0, 1.0f, -0.1f)), Error);
  EXPECT_THROW(Sampler(sampled(1.0f, 0, 1.0f, 1.1f)), Error);
  SamplingParams p;
  p.repetition_penalty = 0;
  EXPECT_THROW(Sampler{p}, Error);
}

TEST(GenerationConfig, ParsesKeys) {
  auto g = GenerationConfig::parse(
      R"({"bos_token_id":65504,"eos_token_id":[65505,65508],"pad_token_id":65509,"do_sample":false})");
  EXPECT_EQ(g.eos_token_ids, (std::vector<int32_t>{65505, 65508}));
  EXPECT_EQ(g.bos_token_id, 65504);
  EXPECT_FALSE(g.sampling.do_sample);
  EXPECT_EQ(g.sampling.top_k, 50);  // Hugging Face default
  g = GenerationConfig::parse(R"({"eos_token_id":7,"do_sample":true,"temperature":0.6,"top_k":null,"top_p":0.9,
      "min_p":0.05,"repetition_penalty":1.1,"max_new_tokens":12,"stop_strings":"<|end_turn|>"})");
  EXPECT_EQ(g.eos_token_ids, (std::vector<int32_t>{7}));
  EXPECT_TRUE(g.sampling.do_sample);
  EXPECT_FLOAT_EQ(g.sampling.temperature, 0.6f);
  EXPECT_EQ(g.sampling.top_k, 50);
  EXPECT_FLOAT_EQ(g.sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(g.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(g.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(g.resolve_max_new_tokens(100, 5), 12);
  EXPECT_EQ(g.stop_strings, (std::vector<std::string>{"<|end_turn|>"}));
  g = GenerationConfig::parse(R"({"max_length":30})");
  EXPECT_EQ(g.resolve_max_new_tokens(17, 5), 13);
  EXPECT_EQ(g.resolve_max_new_tokens(40, 5), 0);
  EXPECT_EQ(GenerationConfig::parse("{}").resolve_max_new_tokens(17, 5), 5);
  auto o = GenerateOptions::from_generation_config(GenerationConfig::parse(R"({"eos_token_id":[3,4],"max_new_tokens":9})"));
  EXPECT_EQ(o.stop_ids, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(o.max_new_tokens, 9);
}

TEST(GenerationConfig, Errors) {
  EXPECT_THROW(GenerationConfig::parse("[1]"), Error);
  EXPECT_THROW(GenerationConfig::parse("{"), Error);
  EXPECT_THROW(GenerationConfig::parse(R"({"top_k":"5"})"), Error);
  EXPECT_THROW(GenerationConfig::parse(R"({"top_p":2})"), Error);
  EXPECT_THROW(GenerationConfig::parse(R"({"eos_token_id":[1,"x"]})"), Error);
  EXPECT_THROW(GenerationConfig::parse(R"({"do_sample":1})"), Error);
  try {
    GenerationConfig::parse(R"({"temperature":"hot"})", "x/generation_config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("temperature"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("x/generation_config.json"), std::string::npos);
  }
  auto d = GenerationConfig::from_model_dir("/nonexistent-dir");
  EXPECT_TRUE(d.eos_token_ids.empty());
}

TEST(ExitCriteria, NamesAndDefaults) {
  for (auto n : {"none", "entropy-diff", "latent-diff", "kl", "minp-kl", "argmax-stability", "cosine"})
    EXPECT_EQ(to_string(parse_criterion(n)), n);
  EXPECT_THROW(parse_criterion("entropy"), Error);
  EXPECT_EQ(default_exit_threshold(ExitCriterion::EntropyDiff), 1e-3);
  EXPECT_EQ(default_exit_threshold(ExitCriterion::LatentDiff), 0.03);
  EXPECT_EQ(default_exit_threshold(ExitCriterion::KL), 5e-4);
  EXPECT_EQ(default_exit_threshold(ExitCriterion::MinpKL), 1e-6);
  EXPECT_EQ(default_exit_threshold(ExitCriterion::ArgmaxStability), 5);
  EXPECT_EQ(default_exit_threshold(ExitCriterion::Cosine), 1e-3);
}

TEST(ExitCriteria, Values) {
  const int64_t V = 4, E = 2;
  std::vector<float> zero(2 * E, 0.0f), s1 = {1, 0, 0, 1}, s2 = {1, 1, 0, 2};
  std::vector<float> l1 = {0, 0, 0, 0}, l2 = {1, 0, 0, 0};
  // kl: the first check compares with the uniform distribution.
  ExitEvaluator kl(ExitCriterion::KL, 1e-3, V);
  kl.init(zero, E);
  auto c = kl.check(s1, l1);
  EXPECT_NEAR(c.value, 0.0, 1e-12);
  EXPECT_TRUE(c.exit);
  c = kl.check(s1, l2);
  auto q = softmax(l2);
  EXPECT_NEAR(c.value, 0.25 * (4 * std::log(0.25) - std::log(q[0]) - 3 * std::log(q[1])), 1e-12);
  EXPECT_FALSE(c.exit);
  // entropy-diff starts from 100.
  ExitEvaluator ent(ExitCriterion::EntropyDiff, 1e-3, V);
  ent.init(zero, E);
  EXPECT_NEAR(ent.check(s1, l1).value, 100 - std::log(4.0), 1e-6);
  // latent-diff from a zero start: 1; then mean of per-position relative change.
  ExitEvaluator ld(ExitCriterion::LatentDiff, 0.03, V);
  ld.init(zero, E);
  EXPECT_NEAR(ld.check(s1, {}).value, 1.0, 1e-12);
  EXPECT_NEAR(ld.check(s2, {}).value, 0.5 * (1 / std::sqrt(2.0) + 1 / 2.0), 1e-12);
  // cosine from a zero start is NaN and never exits.
  ExitEvaluator cs(ExitCriterion::Cosine, 0.5, V);
  cs.init(zero, E);
  c = cs.check(s1, {});
  EXPECT_TRUE(std::isnan(c.value));
  EXPECT_FALSE(c.exit);
  EXPECT_NEAR(cs.check(s2, {}).value, 1 - 0.5 * (1 / std::sqrt(2.0) + 1.0), 1e-12);
  // argmax-stability counts repeats.
  ExitEvaluator am(ExitCriterion::ArgmaxStability, 2, V);
  am.init(zero, E);
  EXPECT_EQ(am.check(s1, l2).value, 0);
  EXPECT_EQ(am.check(s1, l2).value, 1);
  c = am.check(s1, l2);
  EXPECT_EQ(c.value, 2);
  EXPECT_TRUE(c.exit);
  // minp-kl: entries below 0.1 * max become 1/V before renormalising.
  ExitEvaluator mk(ExitCriterion::MinpKL, 1e-6, V);
  mk.init(zero, E);
  std::vector<float> l3 = {5, 0, 0, 0};
  auto p3 = softmax(l3);
  std::vector<double> m = {p3[0], 0.25, 0.25, 0.25};
  double z = m[0] + 0.75;
  double want = 0;
  for (double x : m) want += 0.25 * (std::log(0.25) - std::log(x / z));
  EXPECT_NEAR(mk.check(s1, l3).value, want, 1e-12);
}

TEST(GenerateOptions, Validation) {
  GenerateOptions o;
  EXPECT_NO_THROW(o.validate());
  EXPECT_EQ(o.resolved_cache_strategy().to_string(), "full");
  o.adaptive = AdaptiveOptions{};
  EXPECT_EQ(o.resolved_cache_strategy().to_string(), "latest-m4");
  o.adaptive->check_every = 0;
  EXPECT_THROW(o.validate(), Error);
  o.adaptive->check_every = 1;
  o.cache_strategy = "latest-m5";
  EXPECT_THROW(o.validate(), Error);
  o.cache_strategy.reset();
  o.steps = -1;
  EXPECT_THROW(o.validate(), Error);
}

}  // namespace
}  // namespace huginn
