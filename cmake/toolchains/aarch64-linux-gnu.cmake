# Cross build for 64-bit ARM Linux with Debian's cross compiler (g++-aarch64-linux-gnu); the
# target's libraries (libssl-dev:arm64, libgtest-dev:arm64) come from Debian's arm64 packages
# under multiarch, and the tests run under qemu-user (qemu-aarch64), all installed by
# scripts/setup.sh. ctest runs every test binary through the emulator.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Libraries only from the target's directories; headers and CMake package files may be the
# host's (header-only libraries such as nlohmann-json, CLI11 and cpp-httplib are the same).
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# The binaries' loader and libraries are the multiarch arm64 ones (/lib/ld-linux-aarch64.so.1,
# /usr/lib/aarch64-linux-gnu), so qemu needs no -L prefix: pointing it at the cross compiler's
# own glibc copy instead mixes two glibc builds, and threaded programs then hang at their first
# pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# pkg-config files (cpp-httplib, openssl): the target's only.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# The host's libraries are never the target's.
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
