/* SPDX-License-Identifier: MIT */
/*
 * ksrun OUT -- PROGRAM [ARGS...]: run PROGRAM with stdout and stderr in
 * the file OUT, then print "rc=<exit status> secs=<wall seconds>
 * maxrss_kb=<peak RSS>" (from wait4()).  A signal death is rc=128+signo.
 * tools/kernel-suites.sh times the kernel test suites with it, so that
 * /usr/bin/time need not be installed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct rusage ru;
	int status, fd;
	pid_t pid;

	if (argc < 4) {
		fprintf(stderr, "usage: ksrun OUT -- PROGRAM [ARGS...]\n");
		return 2;
	}
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[3], argv + 3);
		perror(argv[3]);
		_exit(127);
	}
	close(fd);
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("wait4");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("rc=%d secs=%.2f maxrss_kb=%ld\n",
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       ru.ru_maxrss);
	return 0;
}
