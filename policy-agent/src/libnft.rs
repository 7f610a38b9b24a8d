//! libnftables, loaded at run time: the library the `nft` binary is built
//! on, run inside the agent's process.
//!
//! Why: every `nft` process opens a netlink socket, and closing it after a
//! commit costs about 12-15 ms in the kernel (measured on this machine's
//! kernel with nft 1.0.6: `close(2)` of the socket blocks), on top of about
//! 3 ms to start the binary. An element update at 100,000 pods took about
//! 20 ms through `nft -f`, and about 7 ms through a fresh libnftables
//! context whose release (and so the socket's close) is left to a
//! background thread.
//!
//! Each transaction gets a context of its own, made by the thread that
//! applies (so its socket is in that thread's network namespace, as a
//! spawned `nft` would be). A context kept from one transaction to the
//! next keeps nft's cache of the table too, and nft 1.0.6 trusts that
//! cache after its own commits: under a stream of element updates to
//! interval maps it refused later updates with "File exists" (seen at
//! 100 updates/s at 100,000 pods). A fresh context reads the table as the
//! `nft` binary does.
//!
//! The library is opened with `dlopen(3)`, so the agent still runs (with
//! the `nft` binary) where it is missing. Input is nft's script syntax, as
//! `nft -f` reads it; errors are the messages `nft` would print.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

/// The library's file name (its stable ABI, version 1).
const LIBRARY: &CStr = c"libnftables.so.1";

type CtxNew = unsafe extern "C" fn(flags: u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(ctx: *mut c_void);
type BufferError = unsafe extern "C" fn(ctx: *mut c_void) -> c_int;
type GetErrorBuffer = unsafe extern "C" fn(ctx: *mut c_void) -> *const c_char;
type RunFromBuffer = unsafe extern "C" fn(ctx: *mut c_void, buffer: *const c_char) -> c_int;

/// The library, and a thread that releases used contexts.
pub struct LibNftables {
    new: CtxNew,
    free: CtxFree,
    buffer_error: BufferError,
    get_error: GetErrorBuffer,
    run: RunFromBuffer,
    /// Used contexts, to be freed off the applying thread (`None`: the
    /// thread could not be started; contexts are freed in place).
    release: Option<std::sync::mpsc::Sender<Context>>,
}

/// A `struct nft_ctx *` on its way to `nft_ctx_free`.
struct Context(*mut c_void);

// SAFETY: a context is used by one thread at a time: made and run by the
// applying thread, then only freed by the releasing thread.
unsafe impl Send for Context {}

// SAFETY: the handle and function pointers are plain data; contexts are
// made and used inside `run` only.
unsafe impl Send for LibNftables {}

impl std::fmt::Debug for LibNftables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LibNftables")
    }
}

/// `dlsym`, typed.
///
/// # Safety
/// `T` must be the function pointer type of the symbol `name`.
unsafe fn symbol<T: Copy>(library: *mut c_void, name: &CStr) -> Result<T, String> {
    // SAFETY: a valid handle and a NUL-terminated name.
    let address = unsafe { libc::dlsym(library, name.as_ptr()) };
    if address.is_null() {
        return Err(format!(
            "{} has no {}",
            LIBRARY.to_string_lossy(),
            name.to_string_lossy()
        ));
    }
    // SAFETY: the caller names the symbol's type; a function pointer has
    // the size of a data pointer on every platform Linux runs on.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&address) })
}

impl LibNftables {
    /// Loads the library and makes a context, or says why not.
    pub fn open() -> Result<Self, String> {
        // SAFETY: a NUL-terminated file name.
        let library = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if library.is_null() {
            // SAFETY: dlerror returns a message or null.
            let why = unsafe { libc::dlerror() };
            let why = if why.is_null() {
                "not found".to_string()
            } else {
                // SAFETY: a NUL-terminated message owned by the loader.
                unsafe { CStr::from_ptr(why) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(format!("cannot load {}: {why}", LIBRARY.to_string_lossy()));
        }
        let symbols = (|| {
            // SAFETY: each type is the symbol's C signature (libnftables.h).
            unsafe {
                let new: CtxNew = symbol(library, c"nft_ctx_new")?;
                let free: CtxFree = symbol(library, c"nft_ctx_free")?;
                let buffer_error: BufferError = symbol(library, c"nft_ctx_buffer_error")?;
                let get_error: GetErrorBuffer = symbol(library, c"nft_ctx_get_error_buffer")?;
                let run: RunFromBuffer = symbol(library, c"nft_run_cmd_from_buffer")?;
                Ok((new, free, buffer_error, get_error, run))
            }
        })();
        let (new, free, buffer_error, get_error, run) = match symbols {
            Ok(symbols) => symbols,
            Err(why) => {
                // SAFETY: the handle from dlopen above, no longer used.
                unsafe { libc::dlclose(library) };
                return Err(why);
            }
        };
        let (sender, receiver) = std::sync::mpsc::channel::<Context>();
        let release = std::thread::Builder::new()
            .name("nft-release".into())
            .spawn(move || {
                for context in receiver {
                    // SAFETY: a context made by `nft_ctx_new`, used no more.
                    unsafe { free(context.0) };
                }
            })
            .ok()
            .map(|_| sender);
        // The library stays loaded for the life of the process: the
        // releasing thread may be freeing a context with it at any time.
        Ok(LibNftables {
            new,
            free,
            buffer_error,
            get_error,
            run,
            release,
        })
    }

    /// Runs an nft script as one transaction, as `nft -f` would, in a
    /// fresh context.
    pub fn run(&mut self, script: &str) -> Result<(), String> {
        let script = CString::new(script).map_err(|_| "the script holds a NUL byte".to_string())?;
        // SAFETY: NFT_CTX_DEFAULT.
        let context = unsafe { (self.new)(0) };
        if context.is_null() {
            return Err("nft_ctx_new failed".to_string());
        }
        // SAFETY: a live context. Errors go to its buffer, not to the
        // agent's standard error.
        let result = if unsafe { (self.buffer_error)(context) } != 0 {
            Err("nft_ctx_buffer_error failed".to_string())
        } else {
            // SAFETY: a live context and a NUL-terminated script.
            let status = unsafe { (self.run)(context, script.as_ptr()) };
            // SAFETY: the context's error buffer, valid until it is freed.
            let error = unsafe { (self.get_error)(context) };
            let message = if error.is_null() {
                String::new()
            } else {
                // SAFETY: a NUL-terminated buffer owned by the context.
                unsafe { CStr::from_ptr(error) }
                    .to_string_lossy()
                    .trim()
                    .to_string()
            };
            if status == 0 {
                Ok(())
            } else if message.is_empty() {
                Err(format!(
                    "libnftables refused the transaction (status {status})"
                ))
            } else {
                Err(message)
            }
        };
        self.release(Context(context));
        result
    }

    /// Frees a used context on the releasing thread (or here, without one).
    fn release(&mut self, context: Context) {
        let context = match &self.release {
            Some(sender) => match sender.send(context) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => context,
        };
        // SAFETY: a context made by `nft_ctx_new`, used no more.
        unsafe { (self.free)(context.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs the library (installed with nft) but no privilege: `-c`-like
    /// checks are not offered by libnftables' buffer API, so this runs a
    /// command that reads nothing from the kernel and fails in the parser.
    #[test]
    fn a_syntax_error_is_reported_with_nft_s_message() {
        let Ok(mut nft) = LibNftables::open() else {
            assert!(
                std::env::var_os("NETPOL_REQUIRE_E2E").is_none(),
                "libnftables is missing but NETPOL_REQUIRE_E2E is set"
            );
            return;
        };
        let error = nft.run("this is not nft\n").unwrap_err();
        assert!(error.contains("syntax error"), "{error}");
    }
}
