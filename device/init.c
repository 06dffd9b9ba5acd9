/* cellbus-init: PID 1 of a session's PID namespace, once the worker is forked.
 *
 * The Python init in device/sandbox.py forks the worker, confines itself (the session's uid,
 * no_new_privs, the syscall filter) and then execs this, so that the namespace's init does
 * not keep a copy of the template's interpreter: pages of it that both the template and the
 * worker write later would stay with the init, about 2 MB per idle session.
 *
 * Usage: cellbus-init WORKER_PID
 *
 * It first makes itself undumpable: it runs as the session's uid, and a dumpable process of
 * that uid would let the worker read /proc/1/root (the host's file system, where this init
 * lives), /proc/1/cwd and /proc/1/environ. bin/_venv also installs it mode 0711, which the
 * kernel takes as "not readable, so not dumpable" from the exec on, leaving no window.
 *
 * It passes the device's signals on to the worker (those that came before its handlers were in
 * place too: they arrive blocked, so pending), reaps every process that ends in the
 * namespace, and exits when the worker does, with the worker's exit code, or 128+N if signal
 * N killed it (the kernel then kills whatever else still runs in the namespace). On any
 * error it exits 255. Built by bin/_venv into .venv/libexec; without it the Python init
 * stays (device/sandbox.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t worker;

static void forward(int sig) { kill(worker, sig); }

int main(int argc, char **argv) {
    static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                    SIGCONT};
    char *end;
    long pid;
    struct sigaction action = {0};
    sigset_t held;
    size_t i;

    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 || argc != 2)
        return 255;
    errno = 0;
    pid = strtol(argv[1], &end, 10);
    if (errno || *end || pid < 2)
        return 255;
    worker = (pid_t)pid;
#ifdef CELLBUS_INIT_TEST_DELAY_US /* tests/test_sandbox.py: this window made wide */
    usleep(CELLBUS_INIT_TEST_DELAY_US);
#endif
    action.sa_handler = forward;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigemptyset(&held);
    for (i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
        if (sigaction(forwarded[i], &action, NULL) != 0)
            return 255;
        sigaddset(&held, forwarded[i]);
    }
    /* The Python init blocked these before it forked the worker: one that came since is
     * pending, not dropped (as PID 1 without a handler would), and is forwarded now. */
    if (sigprocmask(SIG_UNBLOCK, &held, NULL) != 0)
        return 255;
    for (;;) {
        int status;
        pid_t done = wait(&status);
        if (done == worker) {
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
        if (done < 0 && errno != EINTR)
            return 255; /* no children left: the worker ended unseen */
    }
}
