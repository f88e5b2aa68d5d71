#include "huginn/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "huginn/error.h"

namespace huginn {

void SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    throw Error("temperature must be >= 0, got " + std::to_string(temperature));
  if (top_k < 0) throw Error("top_k must be >= 0 (0 turns it off), got " + std::to_string(top_k));
  if (!(top_p > 0.0f && top_p <= 1.0f)) throw Error("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (!(min_p >= 0.0f && min_p <= 1.0f)) throw Error("min_p must be in [0, 1], got " + std::to_string(min_p));
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    throw Error("repetition_penalty must be > 0, got " + std::to_string(repetition_penalty));
}

std::string SamplingParams::to_string() const {
  std::ostringstream s;
  if (!sampling()) s << "greedy";
  else s << "temperature " << temperature << ", top_k " << top_k << ", top_p " << top_p << ", min_p " << min_p;
  if (repetition_penalty != 1.0f) s << ", repetition_penalty " << repetition_penalty;
  return s.str();
}

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) throw Error("argmax of empty logits");
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> context, float penalty) {
  if (penalty == 1.0f) return;
  std::vector<int32_t> ids(context.begin(), context.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
    float& l = logits[static_cast<size_t>(id)];
    l = l > 0 ? l / penalty : l * penalty;
  }
}

std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingParams& p) {
  const size_t V = logits.size();
  if (V == 0) throw Error("sampling from empty logits");
  std::vector<double> probs(V);
  // Temperature and softmax (temperature 0 would divide by zero: the
  // reference skips the division then, and so do we).
  const double t = p.temperature > 0 ? p.temperature : 1.0;
  double mx = -INFINITY;
  for (size_t i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(logits[i]) / t);
  double sum = 0;
  for (size_t i = 0; i < V; ++i) sum += probs[i] = std::exp(static_cast<double>(logits[i]) / t - mx);
  for (double& x : probs) x /= sum;

  // top-k: keep entries >= the k-th largest (ties at the boundary are kept).
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < V) {
    std::vector<double> tmp(probs);
    std::nth_element(tmp.begin(), tmp.begin() + (p.top_k - 1), tmp.end(), std::greater<>());
    const double kth = tmp[static_cast<size_t>(p.top_k - 1)];
    for (double& x : probs)
      if (x < kth) x = 0;
  }
  // top-p on the (not renormalised) probabilities: in descending order,
  // remove every entry whose cumulative sum exceeds top_p, keeping the first.
  if (p.top_p < 1.0f) {
    std::vector<uint32_t> order;
    for (size_t i = 0; i < V; ++i)
      if (probs[i] > 0) order.push_back(static_cast<uint32_t>(i));
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return probs[a] > probs[b]; });
    double cum = 0;
    for (size_t r = 0; r < order.size(); ++r) {
      cum += probs[order[r]];
      if (r > 0 && cum > static_cast<double>(p.top_p)) probs[order[r]] = 0;
    }
  }
  // min-p relative to the largest remaining probability.
  if (p.min_p > 0) {
    const double mxp = *std::max_element(probs.begin(), probs.end());
    const double cut = static_cast<double>(p.min_p) * mxp;
    for (double& x : probs)
      if (x < cut) x = 0;
  }
  double total = 0;
  for (double x : probs) total += x;
  total = std::max(total, 1e-10);
  for (double& x : probs) x /= total;
  return probs;
}

Sampler::Sampler(SamplingParams params, uint64_t seed) : params_(params), rng_(seed) { params_.validate(); }

int32_t Sampler::draw(std::span<const double> probs) {
  double total = 0;
  size_t last = probs.size();
  for (size_t i = 0; i < probs.size(); ++i)
    if (probs[i] > 0) total += probs[i], last = i;
  if (last == probs.size()) throw Error("cannot sample: every probability is zero");
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_) * total;
  double cum = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    cum += probs[i];
    if (u < cum) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last);  // u landed on the rounding gap at the top
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> context) {
  std::span<const float> l = logits;
  if (params_.repetition_penalty != 1.0f && !context.empty()) {
    scratch_.assign(logits.begin(), logits.end());
    apply_repetition_penalty(scratch_, context, params_.repetition_penalty);
    l = scratch_;
  }
  if (!params_.sampling()) return argmax(l);
  auto probs = sampling_distribution(l, params_);
  return draw(probs);
}

}  // namespace huginn
