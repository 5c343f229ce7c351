%%% @doc What the loop lint costs per module: from the beam itself (a
%%% stripped build: the decoder) and from debug_info (the abstract code).
%%%
%%% Run from the repository root (`npm run bench -- agent' does it too):
%%%
%%%   mkdir -p /tmp/bd_lint_bench && erlc -o /tmp/bd_lint_bench agent/src/beamdeck_agent_terms.erl agent/src/beamdeck_agent_findings.erl agent/src/beamdeck_agent_beam*.erl agent/src/beamdeck_agent_lint*.erl agent/bench/beamdeck_agent_lint_bench.erl && erl -noshell -pa /tmp/bd_lint_bench -eval 'beamdeck_agent_lint_bench:main(), halt().'
%%%
%%% The corpus: the 1,000 largest .beam files of the OTP installation that
%%% runs it (what a release carries; they are built with debug_info). Each
%%% is linted uncached (`beamdeck_agent_lint:analyze_with/3') twice: its
%%% stripped copy (`beam_lib:strip/1') from the beam, and the original from
%%% debug_info. Printed: total time for the 1,000, per-module median, p99
%%% and max, the largest module, and how many modules give the same named
%%% loops both ways (they differ where the compiler inlines functions:
%%% the beam shows the code that runs). A benchmark reports; it does not
%%% pass or fail.
-module(beamdeck_agent_lint_bench).

-export([main/0]).

-define(CORPUS, 1000).

%% @doc Run the benchmark and print the table and a `BENCH_JSON' line.
-spec main() -> ok.
main() ->
    Files = lists:append([filelib:wildcard(filename:join([Lib, "ebin", "*.beam"]))
                          || Lib <- filelib:wildcard(filename:join(code:lib_dir(), "*"))]),
    Sized = lists:reverse(lists:sort([{filelib:file_size(F), F} || F <- Files])),
    Corpus = [{S, F} || {S, F} <- lists:sublist(Sized, ?CORPUS)],
    io:format("loop lint benchmark (OTP ~s): the ~b largest of ~b beams, ~.1f MB~n",
              [erlang:system_info(otp_release), length(Corpus), length(Files),
               lists:sum([S || {S, _} <- Corpus]) / 1048576]),
    Rows = [row(F) || {_, F} <- Corpus],
    Beam = [T || #{beam := T} <- Rows],
    Debug = [T || #{debug := T} <- Rows, is_integer(T)],
    Same = length([x || #{same := true} <- Rows]),
    Compared = length([x || #{same := S} <- Rows, is_boolean(S)]),
    Errors = [{M, E} || #{module := M, error := E} <- Rows],
    {BigSize, BigFile} = hd(Corpus),
    #{beam := BigBeam, debug := BigDebug} = row(BigFile),
    Stats = fun(Ts) -> #{total_ms => lists:sum(Ts) / 1000, median_us => pct(Ts, 50),
                         p99_us => pct(Ts, 99), max_us => lists:max(Ts)} end,
    S1 = Stats(Beam),
    S2 = Stats(Debug),
    io:format("~n  ~-34s ~12s ~12s~n", ["", "stripped", "debug_info"]),
    [io:format("  ~-34s ~12s ~12s~n", [Label, fmt(maps:get(K, S1)), fmt(maps:get(K, S2))])
     || {Label, K} <- [{"total for the corpus, ms", total_ms}, {"per module, median, us", median_us},
                       {"per module, p99, us", p99_us}, {"per module, max, us", max_us}]],
    io:format("  ~-34s ~12s ~12s~n", [io_lib:format("~ts (~b KB), us", [filename:basename(BigFile), BigSize div 1024]),
                                      fmt(BigBeam), fmt(BigDebug)]),
    io:format("~n  modules with debug_info compared: ~b; same named loops: ~b; decoder errors: ~p~n",
              [Compared, Same, Errors]),
    io:format("BENCH_JSON ~s~n", [json(#{otp => list_to_binary(erlang:system_info(otp_release)),
                                         modules => length(Corpus), stripped => S1, debug_info => S2,
                                         compared => Compared, same_loops => Same,
                                         decoder_errors => length(Errors)})]),
    ok.

row(File) ->
    {ok, Bin} = file:read_file(File),
    {ok, {M, _}} = beam_lib:md5(Bin),
    {ok, {M, Stripped}} = beam_lib:strip(Bin),
    {TB, RB} = timer:tc(beamdeck_agent_lint, analyze_with, [beam, M, Stripped]),
    {TD, RD} = timer:tc(beamdeck_agent_lint, analyze_with, [debug_info, M, Bin]),
    Base = #{module => M, beam => TB, debug => case RD of {ok, _} -> TD; _ -> none end},
    case {RB, RD} of
        {{ok, A}, {ok, D}} -> Base#{same => named(beamdeck_agent_lint:loops(A)) =:= beamdeck_agent_lint:loops(D)};
        {{ok, _}, _} -> Base#{same => none};
        {{error, E}, _} -> Base#{same => none, error => E}
    end.

named(Loops) -> [FA || {F, _} = FA <- Loops, hd(atom_to_list(F)) =/= $-].

pct(Ts, P) ->
    S = lists:sort(Ts),
    lists:nth(max(1, min(length(S), round(length(S) * P / 100))), S).

fmt(N) when is_float(N) -> io_lib:format("~.1f", [N]);
fmt(N) when is_integer(N) -> integer_to_list(N);
fmt(none) -> "-".

json(Map) ->
    iolist_to_binary(["{", lists:join(",", [[$", atom_to_list(K), "\":", value(V)] || {K, V} <- maps:to_list(Map)]), "}"]).

value(V) when is_map(V) -> json(V);
value(V) when is_binary(V) -> [$", V, $"];
value(V) when is_float(V) -> io_lib:format("~.3f", [V]);
value(V) when is_integer(V) -> integer_to_list(V).
