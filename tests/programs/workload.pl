# Perl workload for scripts/test-programs.sh: hashes, arrays, regexes,
# string operations, sort, nested structures. Deterministic output.
use strict;
use warnings;

my $x = 12345;
sub rnd { $x = ($x * 1103515245 + 12345) % 2147483648; return $x; }

my @syll = qw(ka lo mi ne ru sa to vi zu);
my %count;
my @lines;
for my $l (1 .. 3000) {
    my @w;
    for (1 .. 3 + rnd() % 10) {
        my $word = join '', map { $syll[rnd() % @syll] } 1 .. 1 + rnd() % 4;
        push @w, $word;
        $count{$word}++;
    }
    push @lines, join(' ', @w);
}
print "distinct words: ", scalar(keys %count), "\n";
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
print "top: ", join(', ', map { "$_=$count{$_}" } @top), "\n";

# Regexes and substitutions.
my $matches = 0;
my %by_first;
for my $line (@lines) {
    $matches++ while $line =~ /\b(ka|zu)\w*(to|vi)\b/g;
    (my $copy = $line) =~ s/(\w)(\w*)/\U$1\E$2/g;
    $by_first{substr($copy, 0, 1)} .= length($copy) . ',';
}
print "regex matches: $matches\n";
for my $k (sort keys %by_first) {
    my @n = split /,/, $by_first{$k};
    my $sum = 0;
    $sum += $_ for @n;
    printf "%s: %d lines, %d chars\n", $k, scalar(@n), $sum;
}

# Nested structures, built and torn down repeatedly.
my $checksum = 0;
for my $round (1 .. 150) {
    my %tree;
    for my $i (1 .. 500) {
        my $k = $syll[$i % @syll] . ($i % 37);
        push @{ $tree{$k}{list} }, [$i, "x" x ($i % 50), { n => $i * $round }];
        $tree{$k}{sum} += $i;
    }
    for my $k (sort keys %tree) {
        $checksum = ($checksum * 31 + $tree{$k}{sum} + scalar(@{ $tree{$k}{list} })) % 1000000007;
    }
}
print "tree checksum: $checksum\n";

# Big strings.
my $big = '';
$big .= sprintf("%06d:%s;", $_, reverse($_ x 3)) for 1 .. 20000;
my @parts = split /;/, $big;
my @sorted = sort { length($a) <=> length($b) or $b cmp $a } @parts;
print "big: ", length($big), " bytes, ", scalar(@parts), " parts, first $sorted[0], last $sorted[-1]\n";
my $tr = ($big =~ tr/0-4//);
print "low digits: $tr\n";
