#include <algorithm>
#include <cmath>

#include "huginn/quantize.h"

namespace huginn {

LogitDrift logit_drift(const float* a, const float* b, int64_t positions, int64_t vocab) {
  LogitDrift d;
  d.positions = positions;
  double sq = 0;
  for (int64_t p = 0; p < positions; ++p) {
    const float* x = a + p * vocab;
    const float* y = b + p * vocab;
    double mx = x[0], my = y[0];
    int64_t ax = 0, ay = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double e = static_cast<double>(x[v]) - y[v];
      d.max_abs_error = std::max(d.max_abs_error, std::fabs(e));
      d.max_abs_logit = std::max(d.max_abs_logit, std::fabs(static_cast<double>(x[v])));
      sq += e * e;
      if (x[v] > mx) mx = x[v], ax = v;
      if (y[v] > my) my = y[v], ay = v;
    }
    d.top1_agree += ax == ay;
    // KL(P||Q) = sum p (log p - log q) with log-sum-exp in double.
    double zx = 0, zy = 0;
    for (int64_t v = 0; v < vocab; ++v) zx += std::exp(x[v] - mx), zy += std::exp(y[v] - my);
    const double lzx = mx + std::log(zx), lzy = my + std::log(zy);
    double kl = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double lp = x[v] - lzx, lq = y[v] - lzy;
      kl += std::exp(lp) * (lp - lq);
    }
    kl = std::max(kl, 0.0);  // rounding can leave -1e-17
    d.mean_kl += kl;
    d.max_kl = std::max(d.max_kl, kl);
  }
  if (positions > 0) {
    d.rms_error = std::sqrt(sq / static_cast<double>(positions * vocab));
    d.mean_kl /= static_cast<double>(positions);
  }
  return d;
}

}  // namespace huginn
