// ThrowsWith(f, {"part", ...}): f must throw huginn::Error whose message
// contains every part (error-path tests check the message names the problem).
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "huginn/error.h"

namespace huginn::test {

template <class F>
testing::AssertionResult ThrowsWith(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const auto& p : parts)
      if (m.find(p) == std::string::npos) return testing::AssertionFailure() << "message \"" << m << "\" lacks \"" << p << "\"";
    return testing::AssertionSuccess() << m;
  } catch (const std::exception& e) {
    return testing::AssertionFailure() << "threw a non-huginn exception: " << e.what();
  }
  return testing::AssertionFailure() << "did not throw";
}

}  // namespace huginn::test
