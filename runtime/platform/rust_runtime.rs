//! What Rust's runtime sets up in a program before `main`, set up again in
//! the fork server, which never reaches `main`, for its workers: SIGPIPE
//! ignored (a write to a closed pipe is an error, not a death), and a
//! handler, on a stack of its own, that reports a stack overflow and
//! aborts. The handler names the task the worker was running, which a
//! thread's name would not.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use nix::libc;

/// Where the stack of the worker's thread ends: a fault in
/// `GUARD_START..GUARD_END` is a stack overflow.
static GUARD_START: AtomicUsize = AtomicUsize::new(0);
static GUARD_END: AtomicUsize = AtomicUsize::new(0);

/// The name of the task the worker runs, for the overflow message.
static TASK: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
static TASK_LEN: AtomicUsize = AtomicUsize::new(0);

/// How much memory the handler's own stack takes (only what it touches
/// becomes resident).
const ALT_STACK: usize = 64 << 10;

/// Whether this process has been set up: the fork server sets itself up
/// once, and the workers it forks inherit it all.
static SET_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets up this process (the fork server, or a worker forked without one)
/// as Rust's runtime would have, unless it has been.
pub(super) fn set_up() {
    if SET_UP.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: setting a signal's action to "ignore" installs no code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
    if let Some((start, end)) = stack_guard() {
        GUARD_START.store(start, Ordering::Relaxed);
        GUARD_END.store(end, Ordering::Relaxed);
    }
    // SAFETY: a fresh anonymous mapping overlaps no other memory; it is
    // never unmapped, since the handler may run until the process ends.
    let stack = unsafe {
        libc::mmap(
            ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return;
    }
    let alt = libc::stack_t {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: ALT_STACK,
    };
    // SAFETY: `alt` describes the mapping just made, which outlives every
    // use of it.
    if unsafe { libc::sigaltstack(&alt, ptr::null_mut()) } != 0 {
        return;
    }
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: a zeroed `sigaction` is a valid starting point; the handler
        // is an `extern "C"` function of the three-argument form that
        // `SA_SIGINFO` asks for, and does only async-signal-safe things.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, ptr::null_mut());
        }
    }
}

/// Records the name of the task the worker runs from now on.
pub(crate) fn set_task(name: &'static str) {
    TASK_LEN.store(0, Ordering::Relaxed);
    TASK.store(name.as_ptr().cast_mut(), Ordering::Relaxed);
    TASK_LEN.store(name.len(), Ordering::Release);
}

/// The addresses just below the lowest usable address of this thread's
/// stack, where an overflow faults.
fn stack_guard() -> Option<(usize, usize)> {
    // SAFETY: `attr` is initialised by `pthread_getattr_np` before it is
    // read, and destroyed once; the out-pointers are valid locals.
    let lowest = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut address: *mut c_void = ptr::null_mut();
        let mut size = 0;
        let got = libc::pthread_attr_getstack(&attr, &mut address, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if got != 0 {
            return None;
        }
        address as usize
    };
    let page = 4096;
    Some((lowest.saturating_sub(16 * page), lowest + page))
}

/// The handler of SIGSEGV and SIGBUS: a fault at the end of the stack is an
/// overflow, reported and turned into an abort, as Rust's runtime does;
/// any other fault takes its default action.
extern "C" fn on_fault(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` for a handler installed
    // with `SA_SIGINFO`; for these signals `si_addr` is the faulting address.
    let address = unsafe { (*info).si_addr() } as usize;
    let (start, end) = (
        GUARD_START.load(Ordering::Relaxed),
        GUARD_END.load(Ordering::Relaxed),
    );
    if (start..end).contains(&address) {
        let len = TASK_LEN.load(Ordering::Acquire);
        let task = TASK.load(Ordering::Relaxed);
        // SAFETY: `write` and `abort` are async-signal-safe. `task` and `len`
        // describe a `&'static str` (`set_task` publishes the length last),
        // or `len` is 0.
        unsafe {
            let say = |bytes: &[u8]| libc::write(2, bytes.as_ptr().cast(), bytes.len());
            say(b"\nforkmap: the task ");
            if len > 0 {
                say(b"`");
                libc::write(2, task.cast(), len);
                say(b"` ");
            }
            say(b"overflowed its worker's stack; aborting\n");
            libc::abort();
        }
    }
    // SAFETY: restoring the default action installs no code; the fault
    // happens again on return, and then takes it.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}
