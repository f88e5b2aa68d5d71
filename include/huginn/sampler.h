// Next-token selection: greedy or sampled (temperature, top-k, top-p, min-p),
// with an optional repetition penalty.
//
// The sampled path follows the reference's `_sample_next_token`
// (recpre/raven_modeling_minimal.py): logits / temperature -> softmax ->
// top-k (keep probabilities >= the k-th largest, ties kept) -> top-p (sort
// descending, drop every entry whose cumulative sum exceeds top_p, always
// keeping the first) -> min-p (drop entries below min_p * max) -> renormalise
// -> one multinomial draw. The repetition penalty is applied to the logits
// first, as Hugging Face's RepetitionPenaltyLogitsProcessor does (also before
// greedy argmax).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace huginn {

struct SamplingParams {
  bool do_sample = false;      // false: greedy (argmax)
  float temperature = 1.0f;    // > 0; 0 means greedy
  int top_k = 0;               // 0: off
  float top_p = 1.0f;          // in (0, 1]; 1: off
  float min_p = 0.0f;          // in [0, 1]; 0: off
  float repetition_penalty = 1.0f;  // > 0; 1: off

  // True when a draw is random (do_sample and temperature > 0).
  bool sampling() const { return do_sample && temperature > 0.0f; }
  // Throws huginn::Error naming the bad field.
  void validate() const;
  std::string to_string() const;
};

// Index of the largest value (the first one on ties), as torch.argmax.
int32_t argmax(std::span<const float> logits);

// For every distinct id in `context`: logit / penalty when the logit is > 0,
// logit * penalty otherwise. Ids outside [0, logits.size()) are ignored.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> context, float penalty);

// The distribution a sampled draw uses (temperature, softmax, top-k, top-p,
// min-p, renormalised), in double precision. Excluded ids get exactly 0.
// Ignores do_sample and repetition_penalty.
std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(SamplingParams params = {}, uint64_t seed = 0);
  const SamplingParams& params() const { return params_; }
  // Chooses the next id from one row of logits; `context` is every token the
  // sequence has so far (prompt and generated), for the repetition penalty.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> context);
  // One draw from a distribution (entries >= 0, sum > 0); never returns an id
  // whose probability is 0.
  int32_t draw(std::span<const double> probs);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;
};

}  // namespace huginn
