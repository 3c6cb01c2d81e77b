// Peer credentials of a connected Unix domain socket, read from the kernel.
// getPeerCred(fd)  -> { pid, uid, gid }            (SO_PEERCRED)
// getPeerPidfd(fd) -> pidfd number, or -1 when the kernel lacks SO_PEERPIDFD
// getPeerGroups(fd)-> supplementary gids of the peer (SO_PEERGROUPS), [] when unsupported
// closeFd(fd)      -> closes a pidfd handed out by getPeerPidfd or pidfdOpen
// pidfdOpen(pid)   -> pidfd_open(pid, 0), or -1 when the process is gone or the kernel lacks it
// pidfdAlive(fd)   -> pidfd_send_signal(fd, 0): false once the process has exited (ESRCH)
#include <napi.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <vector>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static int FdArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), "file descriptor (number) expected").ThrowAsJavaScriptException();
    return -1;
  }
  return info[0].As<Napi::Number>().Int32Value();
}

static Napi::Value GetPeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info);
  if (env.IsExceptionPending()) return env.Undefined();
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    Napi::Error err = Napi::Error::New(env, std::string("getsockopt(SO_PEERCRED) failed: ") + strerror(errno));
    err.Set("errno", Napi::Number::New(env, errno));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

static Napi::Value GetPeerPidfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info);
  if (env.IsExceptionPending()) return env.Undefined();
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, pidfd);
}

static Napi::Value GetPeerGroups(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info);
  if (env.IsExceptionPending()) return env.Undefined();
  std::vector<gid_t> groups(64);
  socklen_t len = groups.size() * sizeof(gid_t);
  int rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
  if (rc != 0 && errno == ERANGE) {
    groups.resize(len / sizeof(gid_t) + 1);
    len = groups.size() * sizeof(gid_t);
    rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
  }
  Napi::Array out = Napi::Array::New(env);
  if (rc != 0) return out;
  size_t n = len / sizeof(gid_t);
  for (size_t i = 0; i < n; i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, groups[i]));
  return out;
}

static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info);
  if (env.IsExceptionPending()) return env.Undefined();
  if (fd >= 0) close(fd);
  return env.Undefined();
}

static Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = FdArg(info);
  if (env.IsExceptionPending()) return env.Undefined();
  if (pid <= 0) return Napi::Number::New(env, -1);
  long fd = syscall(SYS_pidfd_open, pid, 0);
  return Napi::Number::New(env, fd < 0 ? -1 : static_cast<double>(fd));
}

// True while the process behind the pidfd runs (EPERM also means it exists); false after it exited
// (ESRCH) or when fd is not a pidfd (EBADF, EINVAL).
static Napi::Value PidfdAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info);
  if (env.IsExceptionPending()) return env.Undefined();
  if (fd < 0) return Napi::Boolean::New(env, false);
  long rc = syscall(SYS_pidfd_send_signal, fd, 0, nullptr, 0);
  return Napi::Boolean::New(env, rc == 0 || errno == EPERM);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getPeerCred", Napi::Function::New(env, GetPeerCred));
  exports.Set("getPeerPidfd", Napi::Function::New(env, GetPeerPidfd));
  exports.Set("getPeerGroups", Napi::Function::New(env, GetPeerGroups));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("pidfdAlive", Napi::Function::New(env, PidfdAlive));
  return exports;
}

NODE_API_MODULE(peercred, Init)
