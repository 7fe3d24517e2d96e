#!/usr/bin/env perl
# run.pl: run a command locally, optionally as an array of jobs, logging to a file.
# Same calling convention as Kaldi's utils/run.pl, so that cmd.sh can point at
# queue.pl or slurm.pl instead:
#
#   run.pl [--max-jobs-run N] [JOB=1:n] LOGFILE COMMAND...
#
# With JOB=a:b the command runs once per job id (at most N at a time, default
# all), every "JOB" in LOGFILE and COMMAND replaced by the id. Each log file
# gets a "# COMMAND" header, "# Started at", "# Accounting: time=S threads=1"
# and "# Ended (code C) at" lines around the command's stdout+stderr. Exits 0
# when every job succeeded, else 1 with a one-line message naming a failed log.
# Written for admmq (not copied from Kaldi).
use strict;
use warnings;
use POSIX qw(strftime);

my $max_jobs = 0;
my ($jobvar, $first, $last) = (undef, 1, 1);
while (@ARGV && $ARGV[0] =~ /^--/) {
  my $opt = shift @ARGV;
  if ($opt eq '--max-jobs-run' && @ARGV) { $max_jobs = shift @ARGV; }
  elsif ($opt =~ /^--(config|mem|gpu|num-threads|time)$/ && @ARGV) { shift @ARGV; }  # queue options: ignored locally
  else { die "run.pl: unknown option $opt\n"; }
}
if (@ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+):(\d+)$/) {
  ($jobvar, $first, $last) = ($1, $2, $3);
  shift @ARGV;
  die "run.pl: empty job range $first:$last\n" if $last < $first;
} elsif (@ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+)$/) {
  ($jobvar, $first, $last) = ($1, $2, $2);
  shift @ARGV;
}
die "usage: run.pl [--max-jobs-run N] [JOB=1:n] LOGFILE COMMAND...\n" if @ARGV < 2;
my $logtmpl = shift @ARGV;
# Kaldi's convention: an argument without whitespace is passed as is, so the job's shell reads it (a "\|" and
# "'&&'" in the caller's command line become a pipe and an "and" inside the job, "'<unk>'" becomes <unk>, as
# steps/pytorchnn passes it); others are single-quoted.
my $cmdtmpl = join(' ', map { my $a = $_; ($a =~ /^\S+$/) ? $a : "'" . join("'\\''", split(/'/, $a, -1)) . "'" } @ARGV);
die "run.pl: JOB range given but the log file $logtmpl does not contain $jobvar\n"
  if defined $jobvar && $last > $first && index($logtmpl, $jobvar) < 0;

my %pid2job;
my @failed;
my $running = 0;

sub subst { my ($s, $id) = @_; return $s unless defined $jobvar; $s =~ s/\b$jobvar\b/$id/g; return $s; }

sub reap {
  my $pid = wait();
  return if $pid < 0;
  my $code = $? >> 8;
  $code = 128 + ($? & 127) if $? & 127;
  my $id = delete $pid2job{$pid};
  $running--;
  push @failed, [$id, $code] if $code != 0;
}

for my $id ($first .. $last) {
  reap() while $max_jobs > 0 && $running >= $max_jobs;
  my $log = subst($logtmpl, $id);
  my $cmd = subst($cmdtmpl, $id);
  (my $dir = $log) =~ s{/[^/]*$}{};
  system('mkdir', '-p', $dir) if $dir ne $log && !-d $dir;
  my $pid = fork();
  die "run.pl: fork failed: $!\n" unless defined $pid;
  if ($pid == 0) {
    open(my $fh, '>', $log) or die "run.pl: cannot write log file $log: $!\n";
    my $start = time();
    print $fh "# $cmd \n# Started at " . strftime("%a %b %e %H:%M:%S %Z %Y", localtime) . "\n#\n";
    close $fh;
    my $ret = system('bash', '-c', "( $cmd ) >>'$log' 2>&1");
    my $code = $ret >> 8;
    $code = 128 + ($ret & 127) if $ret & 127;
    open($fh, '>>', $log) or exit 1;
    my $elapsed = time() - $start;
    print $fh "# Accounting: time=$elapsed threads=1\n";
    print $fh "# Ended (code $code) at " . strftime("%a %b %e %H:%M:%S %Z %Y", localtime) . ", elapsed time $elapsed seconds\n";
    close $fh;
    exit($code > 255 ? 1 : $code);
  }
  $pid2job{$pid} = $id;
  $running++;
}
reap() while $running > 0;

if (@failed) {
  my ($id, $code) = @{$failed[0]};
  my $n = scalar @failed;
  my $total = $last - $first + 1;
  print STDERR "run.pl: $n / $total failed, log is in " . subst($logtmpl, $id) . " (exit code $code)\n";
  exit 1;
}
exit 0;
