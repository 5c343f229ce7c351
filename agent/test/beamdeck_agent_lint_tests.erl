-module(beamdeck_agent_lint_tests).

-include_lib("eunit/include/eunit.hrl").

%% The forum's listener, in Erlang: start/1 and loop/1 recurse locally;
%% the fun spawned per connection calls loop/1 but is not part of start/1's
%% loop. ext_loop/1 recurses fully qualified, sum/2 is a pure recursion,
%% ping/1 and pong/1 loop through each other.
-define(LISTENER, "
-module(bd_lint_listener).
-export([start/1, loop/1, ext_loop/1, sum/2, ping/1]).
start(L) ->
    {ok, C} = gen_tcp:accept(L),
    spawn(fun() -> loop(C) end),
    start(L).
loop(S) ->
    case gen_tcp:recv(S, 0) of
        {ok, _} -> ok = gen_tcp:send(S, <<\"hi\">>), loop(S);
        {error, _} -> gen_tcp:close(S)
    end.
ext_loop(S) ->
    receive {msg, _} -> ?MODULE:ext_loop(S); stop -> ok end.
sum([], Acc) -> Acc;
sum([H | T], Acc) -> sum(T, lists:max([H, 0]) + Acc).
ping(N) -> receive go -> pong(N + 1) end.
pong(N) -> receive go -> ping(N + 1) end.
").

%% A gen_server callback module: its loop lives in gen_server.
-define(CALLBACK, "
-module(bd_lint_callback).
-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2]).
init(X) -> {ok, X}.
handle_call(get, _From, S) -> {reply, S, S}.
handle_cast(_, S) -> {noreply, S}.
").

tmp_dir() ->
    Dir = filename:join(["/tmp", "bd_lint_tests_" ++ os:getpid()]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

fas(Analysis) ->
    lists:sort([{F, A} || #{function := F, arity := A} <- beamdeck_agent_lint:findings(Analysis)]).

%% The beam decoder reads every module, with debug_info or without.
decoder() ->
    {M, Bin} = beamdeck_test_util:compile(?LISTENER, [debug_info]),
    {ok, A} = beamdeck_agent_lint:analyze(M, Bin),
    ?assertEqual(beam, maps:get(source, A)),
    ?assertEqual(erlang, maps:get(language, A)),
    %% Every loop is found; the pure recursion is a loop but not reported.
    ?assertEqual([{loop, 1}, {ping, 1}, {pong, 1}, {start, 1}, {sum, 2}],
                 beamdeck_agent_lint:loops(A)),
    ?assertEqual([{loop, 1}, {ping, 1}, {pong, 1}, {start, 1}], fas(A)),
    [Start] = [F || #{function := start} = F <- beamdeck_agent_lint:findings(A)],
    ?assertEqual(<<"calls gen_tcp:accept/1">>, maps:get(evidence, Start)),
    %% The BEAM keeps no line for a tail call: the line is that of the
    %% closest instruction before it that has one (the spawn, line 6).
    ?assertEqual(6, maps:get(line, Start)),
    [Ping] = [F || #{function := ping} = F <- beamdeck_agent_lint:findings(A)],
    ?assertEqual([{ping, 1}, {pong, 1}], maps:get(cycle, Ping)),
    ?assertEqual(<<"receive">>, maps:get(evidence, Ping)).

%% Stripped (no debug_info), the same findings, loops and lines as the
%% abstract code gives.
stripped_finds_the_same() ->
    {M, Bin} = beamdeck_test_util:compile(?LISTENER, [debug_info]),
    {ok, {M, Stripped}} = beam_lib:strip(Bin),
    ?assertMatch({ok, {M, [{debug_info, _}]}}, beam_lib:chunks(Bin, [debug_info])),
    {ok, A} = beamdeck_agent_lint:analyze(M, Stripped),
    ?assertEqual(beam, maps:get(source, A)),
    {ok, B} = beamdeck_agent_lint:analyze_with(debug_info, M, Bin),
    ?assertEqual(debug_info, maps:get(source, B)),
    ?assertEqual(fas(B), fas(A)),
    ?assertEqual(beamdeck_agent_lint:loops(B), beamdeck_agent_lint:loops(A)),
    Lines = fun(X) -> lists:sort([{F, L} || #{function := F, line := L} <- beamdeck_agent_lint:findings(X)]) end,
    ?assertEqual([{loop, 10}, {ping, 17}, {pong, 18}, {start, 7}], Lines(B)),
    %% start/1's tail call has no line of its own in the beam (see decoder/0).
    ?assertEqual([{loop, 10}, {ping, 17}, {pong, 18}, {start, 6}], Lines(A)),
    ?assertMatch({error, <<"bd_lint_listener has no debug_info">>},
                 beamdeck_agent_lint:analyze_with(debug_info, M, Stripped)).

callback_module_has_no_loop() ->
    {M, Bin} = beamdeck_test_util:compile(?CALLBACK, [debug_info]),
    {ok, A} = beamdeck_agent_lint:analyze(M, Bin),
    ?assertEqual([], beamdeck_agent_lint:findings(A)),
    ?assertEqual([], beamdeck_agent_lint:loops(A)).

erlang_fix_text() ->
    {M, Bin} = beamdeck_test_util:compile(?LISTENER, [debug_info]),
    {ok, A} = beamdeck_agent_lint:analyze(M, Bin),
    Json = [beamdeck_agent_lint:finding_json(F) || F <- beamdeck_agent_lint:findings(A)],
    [Loop] = [J || #{function := <<"loop">>} = J <- Json],
    ?assertEqual(<<"?MODULE:loop(...)">>, maps:get(fix, Loop)),
    ?assertEqual(<<"bd_lint_listener">>, maps:get(module, Loop)),
    ?assertMatch({_, _}, binary:match(maps:get(message, Loop), <<"bd_lint_listener:loop/1 calls itself">>)),
    ?assertMatch({_, _}, binary:match(maps:get(message, Loop), <<"?MODULE:loop(...)">>)),
    %% pong/1 is not exported: the fix says so.
    [Pong] = [J || #{function := <<"pong">>} = J <- Json],
    ?assertEqual(<<"?MODULE:ping(...)">>, maps:get(fix, Pong)),
    [Ping] = [J || #{function := <<"ping">>} = J <- Json],
    ?assertMatch({_, _}, binary:match(maps:get(message, Ping), <<"and export the function">>)),
    ?assertMatch({_, _}, binary:match(maps:get(message, Ping), <<"loop of local calls (ping/1, pong/1)">>)),
    _ = iolist_to_binary(beamdeck_agent_json:encode(Json)).

lint_test_() ->
    {setup, fun tmp_dir/0, fun(Dir) -> os:cmd("rm -rf " ++ Dir) end,
     [?_test(decoder()), ?_test(stripped_finds_the_same()), ?_test(callback_module_has_no_loop()),
      ?_test(erlang_fix_text()), {timeout, 120, ?_test(elixir())}, ?_test(loaded_module()),
      ?_test(not_a_beam()), ?_test(elixir_alias())]}.

%% The forum's TestListener, compiled with elixirc at test time.
elixir() ->
    Elixirc = os:find_executable("elixirc"),
    ?assertNotEqual(false, Elixirc),
    Dir = filename:join(tmp_dir(), "ex"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Src = filename:join(Dir, "test_listener.ex"),
    ok = file:write_file(Src, <<"
defmodule TestListener do
  require Logger
  def start(socket) do
    {:ok, client} = :gen_tcp.accept(socket)
    Logger.info \"A client connected\"
    Task.async(fn -> loop(client) end)
    start(socket)
  end
  def loop(socket) do
    case :gen_tcp.recv(socket, 0) do
      {:ok, _} ->
        say_hello(socket)
        loop(socket)
      {:error, _} ->
        :gen_tcp.close(socket)
    end
  end
  def fixed(socket) do
    receive do
      :stop -> :ok
      _ -> __MODULE__.fixed(socket)
    end
  end
  def say_hello(socket), do: :ok = :gen_tcp.send(socket, <<\"Hey there!\\n\">>)
end
">>),
    Out = os:cmd(Elixirc ++ " -o " ++ Dir ++ " " ++ Src ++ " 2>&1"),
    Beam = filename:join(Dir, "Elixir.TestListener.beam"),
    ?assert(filelib:is_regular(Beam) orelse error({elixirc_failed, Out})),
    {ok, Bin} = file:read_file(Beam),
    %% From the beam, and through Elixir's debug_info backend: the same.
    %% elixirc is ELIXIR_HOME/bin/elixirc; the backend is in ELIXIR_HOME/lib/elixir/ebin.
    Real = case file:read_link_all(Elixirc) of
               {ok, Link} -> Link;
               {error, _} -> Elixirc
           end,
    Home = filename:dirname(filename:dirname(filename:absname(Real, filename:dirname(Elixirc)))),
    Paths = [P || P <- [filename:join([Home, "lib", "elixir", "ebin"])], filelib:is_dir(P)],
    ?assertNotEqual([], Paths),
    true = code:add_patha(hd(Paths)),
    try
        {ok, A} = beamdeck_agent_lint:analyze('Elixir.TestListener', Bin),
        ?assertEqual(beam, maps:get(source, A)),
        {ok, DI} = beamdeck_agent_lint:analyze_with(debug_info, 'Elixir.TestListener', Bin),
        ?assertEqual(debug_info, maps:get(source, DI)),
        ?assertEqual(fas(DI), fas(A)),
        ?assertEqual(beamdeck_agent_lint:loops(DI), beamdeck_agent_lint:loops(A)),
        ?assertEqual(elixir, maps:get(language, A)),
        ?assertEqual([{loop, 1}, {start, 1}], fas(A)),
        Json = [beamdeck_agent_lint:finding_json(F) || F <- beamdeck_agent_lint:findings(A)],
        [Start] = [J || #{function := <<"start">>} = J <- Json],
        ?assertEqual(<<"__MODULE__.start(...)">>, maps:get(fix, Start)),
        ?assertEqual(<<"Elixir.TestListener">>, maps:get(module, Start)),
        %% The tail call's line is the Task.async before it (no line of its own).
        ?assertEqual(7, maps:get(line, Start)),
        ?assertEqual([8], [L || #{function := start, line := L} <- beamdeck_agent_lint:findings(DI)]),
        ?assertMatch({_, _}, binary:match(maps:get(message, Start), <<"TestListener.start/1 calls itself">>)),
        ?assertEqual(<<"calls gen_tcp:accept/1">>, maps:get(evidence, Start)),
        {ok, {_, Stripped}} = beam_lib:strip(Bin),
        {ok, D} = beamdeck_agent_lint:analyze('Elixir.TestListener', Stripped),
        ?assertEqual(beam, maps:get(source, D)),
        ?assertEqual([{loop, 1}, {start, 1}], fas(D))
    after
        code:del_path(hd(Paths))
    end.

loaded_module() ->
    Dir = tmp_dir(),
    {M, Bin} = beamdeck_test_util:compile(?LISTENER, [debug_info]),
    File = filename:join(Dir, "bd_lint_listener.beam"),
    ok = file:write_file(File, Bin),
    {module, M} = code:load_abs(filename:rootname(File)),
    try
        {ok, A} = beamdeck_agent_lint:analyze_loaded(M),
        ?assertEqual([{loop, 1}, {ping, 1}, {pong, 1}, {start, 1}], fas(A)),
        %% The file changed under the loaded code: no matching object code.
        {_, Other} = beamdeck_test_util:compile(?CALLBACK, [debug_info]),
        ok = file:write_file(File, Other),
        ?assertMatch({error, <<"no beam file of bd_lint_listener matches", _/binary>>},
                     beamdeck_agent_lint:object_code(M))
    after
        code:purge(M), code:delete(M), code:purge(M)
    end,
    ?assertMatch({error, _}, beamdeck_agent_lint:analyze_loaded(bd_lint_not_a_module)).

not_a_beam() ->
    ?assertMatch({error, _}, beamdeck_agent_lint:analyze(foo, <<"not a beam">>)).

elixir_alias() ->
    ?assertEqual(<<"TestListener">>, beamdeck_agent_lint:elixir_alias('Elixir.TestListener')),
    ?assertEqual(<<"lists">>, beamdeck_agent_lint:elixir_alias(lists)).
