%%% @doc Loaded into the measured node by tests/bench/footprint.ts for its
%%% "old code present" row: processes left on the old code of bd_fp_old
%%% (loaded twice, as a hot upgrade leaves it) and the agent's
%%% `old_code_rescan_ms' setting, the row's before/after switch.
-module(bd_fp_old_code).

-export([start/1, stop/0, rescan_ms/1]).

-define(OLD, bd_fp_old).
-define(OLD_HOLDER, bd_fp_old_holder).

%% @doc Old code present, as right after a hot upgrade: `K' processes
%% started on bd_fp_old, then the same module loaded again; how many are
%% on its old code (checked here, not by the agent).
-spec start(pos_integer()) -> non_neg_integer().
start(K) ->
    {module, ?OLD} = code:ensure_loaded(?OLD),
    {?OLD, Bin, File} = code:get_object_code(?OLD),
    Self = self(),
    H = spawn(fun() ->
                      Ps = [spawn(?OLD, loop, []) || _ <- lists:seq(1, K)],
                      Self ! {started, self()},
                      receive stop -> [P ! stop || P <- Ps] end
              end),
    register(?OLD_HOLDER, H),
    receive {started, H} -> ok end,
    Ps = [P || P <- erlang:processes(), {initial_call, {?OLD, loop, 0}} <- [process_info(P, initial_call)]],
    %% They must be in their receive (in the first version) before the reload.
    wait_waiting(Ps, 100),
    {module, ?OLD} = code:load_binary(?OLD, File, Bin),
    length([P || P <- Ps, erlang:check_process_code(P, ?OLD)]).

wait_waiting(Ps, 0) -> error({not_waiting, Ps});
wait_waiting(Ps, N) ->
    case lists:all(fun(P) -> process_info(P, status) =:= {status, waiting} end, Ps) of
        true -> ok;
        false -> timer:sleep(10), wait_waiting(Ps, N - 1)
    end.

%% @doc End the processes on old code and purge it.
-spec stop() -> boolean().
stop() ->
    ?OLD_HOLDER ! stop,
    timer:sleep(100),
    code:purge(?OLD).

%% @doc Set the agent's `old_code_rescan_ms' (`undefined': its default) —
%% the bench's before/after switch: at 1000 every 10 s poll is a full pass.
-spec rescan_ms(pos_integer() | undefined) -> ok.
rescan_ms(undefined) -> application:unset_env(beamdeck_agent, old_code_rescan_ms);
rescan_ms(Ms) -> application:set_env(beamdeck_agent, old_code_rescan_ms, Ms).
