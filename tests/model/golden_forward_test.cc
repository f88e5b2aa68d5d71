// The forward pass against the reference implementation's outputs
// (../shared/golden/model). Tolerances: the golden README measured the
// largest float32-vs-float64 difference of every case (about 1e-6 to 3.4e-6)
// and recommends 10x that, rounded up, as the absolute tolerance for a
// float32 engine (cases.json "recommended_atol": 2e-5 to 4e-5). We use those
// values as they are: our summation order differs from PyTorch's, which moves
// results by the same float32 rounding the measurement covers.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "golden.h"
#include "huginn/engine.h"
#include "huginn/model.h"

namespace huginn {
namespace {

using test::GoldenArray;
using test::GoldenModel;
using test::max_abs_diff;

struct Param {
  std::string golden;  // which golden folder holds the expected arrays
  std::string model;   // which checkpoint folder to load (tiny-sharded shares tiny's arrays)
};

std::string param_name(const testing::TestParamInfo<Param>& p) {
  std::string s = p.param.model;
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}

class GoldenForward : public testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    golden_ = std::make_unique<GoldenModel>(GetParam().golden);
    model_ = Model::load(test::golden_dir() + "/model/" + GetParam().model);
    engine_ = std::make_unique<Engine>(*model_, EngineOptions{2});
  }

  void expect_rows_near(const float* got, const GoldenArray& want, int64_t row0, int64_t rows, double atol,
                        const std::string& what) {
    const int64_t w = want.row_size();
    double d = max_abs_diff(got, want.data.data() + row0 * w, static_cast<size_t>(rows * w));
    EXPECT_LE(d, atol) << what << " rows " << row0 << ".." << row0 + rows - 1;
  }

  std::unique_ptr<GoldenModel> golden_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Engine> engine_;
};

TEST_P(GoldenForward, ForwardAtEveryStepCount) {
  const auto prompt = golden_->prompt();
  const double atol = golden_->atol("forward");
  int checked = 0;
  const int64_t mean = model_->config().mean_recurrence;
  for (int64_t n : {int64_t{1}, int64_t{4}, mean, 2 * mean}) {
    Engine::Options o;
    o.steps = n;
    auto r = engine_->forward(prompt, nullptr, o);
    auto logits = golden_->array("forward.n" + std::to_string(n) + ".logits");
    auto latents = golden_->array("forward.n" + std::to_string(n) + ".latent_states");
    ASSERT_EQ(r.logits.size(), logits.data.size());
    ASSERT_EQ(r.latents.size(), latents.data.size());
    EXPECT_LE(max_abs_diff(r.logits.data(), logits.data.data(), r.logits.size()), atol) << "logits, steps " << n;
    EXPECT_LE(max_abs_diff(r.latents.data(), latents.data.data(), r.latents.size()), atol) << "latents, steps " << n;
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

// Prompt fed in chunks with a cache, then token by token: equal to the full forward.
TEST_P(GoldenForward, ChunkedPrefillAndDecode) {
  const auto prompt = golden_->prompt();
  for (const std::string c : {"chunked", "chunked_multi"}) {
    const auto want = golden_->array(c + ".logits");
    const double atol = golden_->atol(c);
    std::vector<std::pair<size_t, size_t>> chunks = {{0, 10}};
    if (c == "chunked") {
      for (size_t t = 10; t < prompt.size(); ++t) chunks.push_back({t, t + 1});
    } else {
      chunks.push_back({10, 14});
      chunks.push_back({14, prompt.size()});
    }
    KVCache cache(model_->config());
    for (auto [b, e] : chunks) {
      Engine::Options o;
      o.steps = 4;
      auto r = engine_->forward(std::span(prompt).subspan(b, e - b), &cache, o);
      expect_rows_near(r.logits.data(), want, static_cast<int64_t>(b), static_cast<int64_t>(e - b), atol, c);
    }
    EXPECT_EQ(cache.length(), static_cast<int64_t>(prompt.size()));
  }
}

TEST_P(GoldenForward, Intermediates) {
  const auto prompt = golden_->prompt();
  std::vector<int32_t> ids(prompt.begin(), prompt.begin() + 5);
  const double atol = golden_->atol("intermediates");
  const int64_t E = model_->config().n_embd, H = model_->config().n_heads, D = model_->config().head_dim();
  std::map<std::string, std::vector<float>> seen;
  engine_->set_trace([&](const std::string& name, const float* d, int64_t rows, int64_t cols) {
    seen[name].assign(d, d + rows * cols);
  });
  Engine::Options o;
  o.steps = 4;
  auto r = engine_->forward(ids, nullptr, o);
  engine_->set_trace(nullptr);

  auto check = [&](const std::string& golden_name, const std::vector<float>& got, size_t offset = 0) {
    auto want = golden_->array("intermediates." + golden_name);
    SCOPED_TRACE(golden_name);
    ASSERT_GE(want.data.size(), offset);
    size_t n = got.size();
    ASSERT_LE(offset + n, want.data.size());
    EXPECT_LE(max_abs_diff(got.data(), want.data.data() + offset, n), atol);
  };
  const size_t plane = static_cast<size_t>(5 * E);
  check("embeddings", seen.at("embeddings"));
  check("prelude", seen.at("prelude.0.out"), 0);
  check("prelude", seen.at("prelude.1.out"), plane);
  for (int i = 0; i < 4; ++i) {
    check("adapter", seen.at("adapter." + std::to_string(i)), i * plane);
    for (int j = 0; j < 4; ++j)
      check("core_block", seen.at("core." + std::to_string(i) + "." + std::to_string(j) + ".out"), (i * 4 + j) * plane);
    check("core_state", seen.at("core." + std::to_string(i) + ".3.out"), i * plane);
  }
  check("latent_states", r.latents);
  check("coda", seen.at("coda.0.out"), 0);
  check("coda", seen.at("coda.1.out"), plane);
  check("final_hidden", seen.at("final_hidden"));
  check("logits", r.logits);
  // Inside prelude block 0.
  check("prelude0.norm_1", seen.at("prelude.0.norm_1"));
  check("prelude0.qkv", seen.at("prelude.0.qkv"));
  std::vector<float> q, k, v;
  const auto& qkv = seen.at("prelude.0.qkv_rope");
  for (int t = 0; t < 5; ++t) {
    const float* row = qkv.data() + t * 3 * E;
    q.insert(q.end(), row, row + E);
    k.insert(k.end(), row + E, row + 2 * E);
    v.insert(v.end(), row + 2 * E, row + 3 * E);
  }
  ASSERT_EQ(q.size(), static_cast<size_t>(5 * H * D));
  check("prelude0.q_rope", q);
  check("prelude0.k_rope", k);
  check("prelude0.v", v);
  check("prelude0.attn_context", seen.at("prelude.0.attn_context"));
  check("prelude0.attn_out", seen.at("prelude.0.attn_out"));
  check("prelude0.norm_2", seen.at("prelude.0.norm_2"));
  check("prelude0.norm_3", seen.at("prelude.0.norm_3"));
  check("prelude0.mlp_out", seen.at("prelude.0.mlp_out"));
  check("prelude0.norm_4", seen.at("prelude.0.out"));
}

// Several sequences in one call give what each gives alone.
TEST_P(GoldenForward, BatchOfSequencesMatchesSingle) {
  const auto prompt = golden_->prompt();
  const auto want = golden_->array("forward.n4.logits");
  const int64_t V = model_->config().vocab_size;
  std::vector<int32_t> a(prompt.begin(), prompt.end()), b(prompt.begin(), prompt.begin() + 7);
  KVCache ca(model_->config()), cb(model_->config());
  SequenceInput in[2] = {{a, &ca}, {b, &cb}};
  engine_->begin(in);
  for (int i = 0; i < 4; ++i) engine_->step();
  engine_->decode(true);
  const double atol = golden_->atol("forward");
  EXPECT_LE(max_abs_diff(engine_->logits(0).data(), want.data.data(), a.size() * V), atol);
  // The golden rows for the shorter prompt: causal, so its rows equal the first 7.
  EXPECT_LE(max_abs_diff(engine_->logits(1).data(), want.data.data(), b.size() * V), atol);
}

// Weights copied into huge pages (LoadOptions::huge_pages) compute the same.
TEST_P(GoldenForward, HugePageCopyGivesTheSameResult) {
  LoadOptions lo;
  lo.huge_pages = true;
  auto copied = Model::load(test::golden_dir() + "/model/" + GetParam().model, lo);
  EXPECT_GT(copied->copy_seconds(), 0.0);
  EXPECT_EQ(model_->copy_seconds(), 0.0);
  Engine e(*copied, EngineOptions{2});
  Engine::Options o;
  o.steps = 4;
  auto r = e.forward(golden_->prompt(), nullptr, o);
  auto want = golden_->array("forward.n4.logits");
  EXPECT_LE(max_abs_diff(r.logits.data(), want.data.data(), r.logits.size()), golden_->atol("forward"));
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenForward,
                         testing::Values(Param{"tiny", "tiny"}, Param{"tiny", "tiny-sharded"}, Param{"odd", "odd"}),
                         param_name);

}  // namespace
}  // namespace huginn
