// Streaming text and stop strings, with the tiny golden model and the
// Huginn-shaped test tokenizer (../shared/golden/tokenizer/huginn-like; its
// ids are not the model's, so the text is gibberish, but every code path of
// decoding, UTF-8 completeness and stop-string matching runs).
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>

#include "golden.h"
#include "huginn/engine.h"
#include "huginn/error.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/tokenizer.h"

namespace huginn {
namespace {

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

class Stream : public testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(test::golden_dir() + "/model/tiny");
    engine_ = std::make_unique<Engine>(*model_, EngineOptions{1});
    tok_ = std::make_unique<Tokenizer>(Tokenizer::load(test::golden_dir() + "/tokenizer/huginn-like/tokenizer.json"));
    opts_.init_scale = 0;
    opts_.max_new_tokens = 24;
    prompt_ = test::GoldenModel("tiny").prompt();
  }

  GenerationResult run(std::vector<std::string>& chunks, std::vector<int32_t>& streamed_ids) {
    StreamCallbacks cb;
    cb.on_text = [&](int seq, std::string_view t) {
      EXPECT_EQ(seq, 0);
      chunks.emplace_back(t);
    };
    cb.on_token = [&](int, int32_t id, int64_t steps) {
      streamed_ids.push_back(id);
      EXPECT_EQ(steps, model_->config().mean_recurrence);
    };
    return generate(*engine_, prompt_, opts_, tok_.get(), cb);
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Tokenizer> tok_;
  GenerateOptions opts_;
  std::vector<int32_t> prompt_;
};

TEST_F(Stream, TextEqualsDecodeAndChunksAreWholeCharacters) {
  std::vector<std::string> chunks;
  std::vector<int32_t> ids;
  auto r = run(chunks, ids);
  EXPECT_EQ(ids, r.ids);
  EXPECT_EQ(r.text, tok_->decode(r.ids));
  std::string joined;
  for (const auto& c : chunks) {
    EXPECT_TRUE(valid_utf8(c));
    EXPECT_FALSE(c.empty());
    joined += c;
  }
  EXPECT_EQ(joined, r.text);
  EXPECT_EQ(r.finish, FinishReason::Length);
}

TEST_F(Stream, StopStringEndsGenerationAndIsNotEmitted) {
  std::vector<std::string> chunks;
  std::vector<int32_t> ids;
  const auto full = run(chunks, ids);
  // Two ASCII letters from the middle of the text as the stop string.
  std::string stop;
  for (size_t i = full.text.size() / 3; i + 1 < full.text.size(); ++i)
    if (std::isalpha(static_cast<unsigned char>(full.text[i])) && std::isalpha(static_cast<unsigned char>(full.text[i + 1]))) {
      stop = full.text.substr(i, 2);
      break;
    }
  ASSERT_FALSE(stop.empty()) << full.text;
  const size_t at = full.text.find(stop);
  opts_.stop_strings = {"never-matches", stop};
  chunks.clear();
  ids.clear();
  auto r = run(chunks, ids);
  EXPECT_EQ(r.finish, FinishReason::StopString);
  EXPECT_EQ(r.text, full.text.substr(0, at));
  std::string joined;
  for (const auto& c : chunks) joined += c;
  EXPECT_EQ(joined, r.text);
  // It stopped at the token that completed the stop string.
  ASSERT_LT(r.ids.size(), full.ids.size());
  EXPECT_EQ(r.ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + static_cast<std::ptrdiff_t>(r.ids.size())));
  std::vector<int32_t> shorter(r.ids.begin(), r.ids.end() - 1);
  EXPECT_EQ(tok_->decode(shorter).find(stop), std::string::npos);
  EXPECT_NE(tok_->decode(r.ids).find(stop), std::string::npos);
}

TEST_F(Stream, StopStringsNeedATokenizer) {
  opts_.stop_strings = {"x"};
  EXPECT_THROW(generate(*engine_, prompt_, opts_), Error);
}

TEST_F(Stream, CancelStopsBeforeTheNextCall) {
  std::atomic<bool> cancel{false};
  opts_.cancel = &cancel;
  StreamCallbacks cb;
  cb.on_token = [&](int, int32_t, int64_t) {
    static int n = 0;
    if (++n == 3) cancel = true;
  };
  auto r = generate(*engine_, prompt_, opts_, tok_.get(), cb);
  EXPECT_EQ(r.ids.size(), 3u);
  EXPECT_EQ(r.finish, FinishReason::Cancelled);
  EXPECT_EQ(r.text, tok_->decode(r.ids));
}

}  // namespace
}  // namespace huginn
