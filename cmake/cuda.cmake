# cuda.cmake: decide whether to build the CUDA backend (BOLTZ_CUDA = AUTO | ON | OFF).
# AUTO builds it whenever nvcc is found (PATH or /usr/local/cuda), so CI compiles and links it
# even on machines without a GPU. Sets BOLTZ_HAVE_CUDA, the library bzgpu (gpu/: the backend,
# device probing), the benchmark cuda_step (bench/cuda_step.c: pL steps/s on the device), and
# links bzgpu into bench_step (its --backend cuda).
# Architectures default to 80;90 (A100, H100) to keep CI compile times down; pass
# -DCMAKE_CUDA_ARCHITECTURES=native (or e.g. 89) for another card.
set(BOLTZ_HAVE_CUDA OFF)
if(NOT BOLTZ_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(BOLTZ_HAVE_CUDA ON)
  elseif(BOLTZ_CUDA STREQUAL "ON")
    message(FATAL_ERROR "BOLTZ_CUDA=ON but no CUDA compiler was found")
  endif()
endif()

if(BOLTZ_HAVE_CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  file(GLOB BOLTZ_GPU_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/gpu/*.cu ${CMAKE_SOURCE_DIR}/gpu/*.c)
  add_library(bzgpu STATIC ${BOLTZ_GPU_SOURCES})
  target_include_directories(bzgpu PUBLIC ${CMAKE_SOURCE_DIR}/gpu ${CMAKE_SOURCE_DIR}/core)
  # One CUDA runtime in the process: the shared one, as CUDA::cudart.
  set_target_properties(bzgpu PROPERTIES CUDA_RUNTIME_LIBRARY Shared POSITION_INDEPENDENT_CODE ON)
  target_compile_options(bzgpu PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  if(BOLTZ_WERROR)
    target_compile_options(bzgpu PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
  endif()
  target_link_libraries(bzgpu PUBLIC bzcore CUDA::cudart CUDA::cublas CUDA::curand)
  target_compile_definitions(bzgpu PUBLIC BOLTZ_HAVE_CUDA=1)

  add_executable(cuda_step ${CMAKE_SOURCE_DIR}/bench/cuda_step.c)
  target_link_libraries(cuda_step PRIVATE bzgpu bzcore)

  # bench/bench_step.c takes --backend cuda when it sees BOLTZ_HAVE_CUDA, i.e. when linked with
  # bzgpu; bench/ is added after this file, so link it once the top level has been read.
  function(boltz_link_bench_cuda)
    foreach(bench bench_step bench_multichain)
      if(TARGET ${bench})
        target_link_libraries(${bench} PRIVATE bzgpu)
      endif()
    endforeach()
  endfunction()
  cmake_language(DEFER CALL boltz_link_bench_cuda)
  message(STATUS "boltzd: CUDA backend ON (${CMAKE_CUDA_COMPILER}, architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "boltzd: CUDA backend OFF")
endif()
