// Checked CUDA, cuBLAS, cuSOLVER and cuRAND calls that throw hspec::DeviceError.
// Each macro evaluates the call once and, when it fails, throws naming the call, the error
// and file:line. Only for code built with the CUDA backend (kernels/): it includes CUDA headers.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <curand.h>
#include <cusolver_common.h>

#include <string>

#include "hspec/error.hpp"

namespace hspec::detail {

[[noreturn]] inline void throw_device_error(const char* call, const std::string& what,
                                            const char* file, int line) {
  throw DeviceError(std::string(call) + " failed: " + what + " (" + file + ":" +
                    std::to_string(line) + ")");
}

inline std::string cuda_error_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

inline std::string cublas_error_text(cublasStatus_t s) {
  return std::string(cublasGetStatusName(s)) + ": " + cublasGetStatusString(s);
}

inline std::string cusolver_error_text(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_NOT_INITIALIZED:
      return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED:
      return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE:
      return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH:
      return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED:
      return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR:
      return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_INVALID_WORKSPACE:
      return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default:
      return "cusolverStatus_t " + std::to_string(static_cast<int>(s));
  }
}

inline std::string curand_error_text(curandStatus_t s) {
  switch (s) {
    case CURAND_STATUS_VERSION_MISMATCH:
      return "CURAND_STATUS_VERSION_MISMATCH";
    case CURAND_STATUS_NOT_INITIALIZED:
      return "CURAND_STATUS_NOT_INITIALIZED";
    case CURAND_STATUS_ALLOCATION_FAILED:
      return "CURAND_STATUS_ALLOCATION_FAILED";
    case CURAND_STATUS_TYPE_ERROR:
      return "CURAND_STATUS_TYPE_ERROR";
    case CURAND_STATUS_OUT_OF_RANGE:
      return "CURAND_STATUS_OUT_OF_RANGE";
    case CURAND_STATUS_LENGTH_NOT_MULTIPLE:
      return "CURAND_STATUS_LENGTH_NOT_MULTIPLE";
    case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED:
      return "CURAND_STATUS_DOUBLE_PRECISION_REQUIRED";
    case CURAND_STATUS_LAUNCH_FAILURE:
      return "CURAND_STATUS_LAUNCH_FAILURE";
    case CURAND_STATUS_PREEXISTING_FAILURE:
      return "CURAND_STATUS_PREEXISTING_FAILURE";
    case CURAND_STATUS_INITIALIZATION_FAILED:
      return "CURAND_STATUS_INITIALIZATION_FAILED";
    case CURAND_STATUS_ARCH_MISMATCH:
      return "CURAND_STATUS_ARCH_MISMATCH";
    case CURAND_STATUS_INTERNAL_ERROR:
      return "CURAND_STATUS_INTERNAL_ERROR";
    default:
      return "curandStatus_t " + std::to_string(static_cast<int>(s));
  }
}

}  // namespace hspec::detail

#define HSPEC_DEVICE_CHECK_(call, type, ok, text)                                                \
  do {                                                                                           \
    const type hspec_status_ = (call);                                                           \
    if (hspec_status_ != (ok))                                                                   \
      ::hspec::detail::throw_device_error(#call, ::hspec::detail::text(hspec_status_), __FILE__, \
                                          __LINE__);                                             \
  } while (0)

#define CUDA_CHECK_THROW(call) HSPEC_DEVICE_CHECK_(call, cudaError_t, cudaSuccess, cuda_error_text)
#define CUBLAS_CHECK_THROW(call) \
  HSPEC_DEVICE_CHECK_(call, cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublas_error_text)
#define CUSOLVER_CHECK_THROW(call) \
  HSPEC_DEVICE_CHECK_(call, cusolverStatus_t, CUSOLVER_STATUS_SUCCESS, cusolver_error_text)
#define CURAND_CHECK_THROW(call) \
  HSPEC_DEVICE_CHECK_(call, curandStatus_t, CURAND_STATUS_SUCCESS, curand_error_text)

// After a kernel launch: the launch configuration error, if any (a sticky error from an
// earlier asynchronous failure also shows up here).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK_THROW(cudaGetLastError())
