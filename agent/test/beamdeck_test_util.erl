%%% @doc Helpers shared by the agent's EUnit modules.
-module(beamdeck_test_util).

-include_lib("eunit/include/eunit.hrl").

-export([wait_until/1, wait_until/2, wait_waiting/1, kill_wait/1, with_env/2, with_env/3,
         compile/2]).

%% @doc Poll `Fun' until it returns true, for up to 5 s; then assert it.
-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(Fun) -> wait_until(Fun, 5000).

%% @doc Poll `Fun' every 10 ms until it returns true or `Ms' milliseconds
%% have passed; the last call is an assertion, so a timeout fails the test
%% with the condition that never held.
-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> ok.
wait_until(Fun, Ms) ->
    poll(Fun, erlang:monotonic_time(millisecond) + Ms).

poll(Fun, Deadline) ->
    case erlang:monotonic_time(millisecond) >= Deadline of
        true -> ?assert(Fun()), ok;
        false ->
            case Fun() of
                true -> ok;
                false -> timer:sleep(10), poll(Fun, Deadline)
            end
    end.

%% @doc Wait (up to 5 s) until every one of `Pids' waits in a receive: a
%% process just spawned, or just sent a message, may not have run yet on a
%% loaded machine, so a fixed sleep does not say where it is.
-spec wait_waiting([pid()]) -> ok.
wait_waiting(Pids) ->
    wait_until(fun() -> lists:all(fun(P) -> process_info(P, status) =:= {status, waiting} end, Pids) end).

%% @doc Kill each of `Pids' and wait (up to 5 s each) until it is gone.
-spec kill_wait([pid()]) -> ok.
kill_wait(Pids) ->
    Mons = [{P, monitor(process, P)} || P <- Pids],
    [exit(P, kill) || P <- Pids],
    [receive {'DOWN', Ref, process, P, _} -> ok after 5000 -> error({still_alive, P}) end
     || {P, Ref} <- Mons],
    ok.

%% @doc Run `Fun' with the agent's application env `Key' set to `Value',
%% then put back what was there (or unset it).
-spec with_env(atom(), term(), fun(() -> R)) -> R.
with_env(Key, Value, Fun) -> with_env([{Key, Value}], Fun).

%% @doc with_env/3 for several settings at once.
-spec with_env([{atom(), term()}], fun(() -> R)) -> R.
with_env(Env, Fun) ->
    Old = [{K, application:get_env(beamdeck_agent, K)} || {K, _} <- Env],
    [application:set_env(beamdeck_agent, K, V) || {K, V} <- Env],
    try Fun()
    after
        [case O of
             undefined -> application:unset_env(beamdeck_agent, K);
             {ok, V} -> application:set_env(beamdeck_agent, K, V)
         end || {K, O} <- Old]
    end.

%% @doc Compile a module from source text (through a file in a temp dir,
%% so that macros and includes work) with `Opts'; its `{Module, Beam}'.
-spec compile(string() | binary(), [term()]) -> {module(), binary()}.
compile(Source, Opts) ->
    {match, [Name]} = re:run(Source, "-module\\(([a-z_0-9]+)\\)", [{capture, all_but_first, list}]),
    Dir = filename:join(["/tmp", "bd_test_compile_" ++ os:getpid()]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    File = filename:join(Dir, Name ++ ".erl"),
    ok = file:write_file(File, Source),
    Result = compile:file(File, [binary, return_errors | Opts]),
    ok = file:delete(File),
    {ok, Mod, Bin} = Result,
    {Mod, Bin}.
