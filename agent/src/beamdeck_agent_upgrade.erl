%%% @doc Hot upgrades: the `releases', `upgrade_plan', `old_code' and
%%% `upgrade_command' requests, and the commands that change the node.
%%%
%%% Reads (`releases', `upgrade_plan', `old_code') run in the caller, the
%%% request worker of `beamdeck_agent_conn', which is killed when the
%%% request's time is up. Commands (`unpack', `install', `make_permanent',
%%% `rollback') run in a runner process of this server, one at a time:
%%% `upgrade_command' answers `{accepted: true}' at once, progress goes out
%%% as `progress' frames and the outcome as one `command_result' frame.
%%%
%%% Every command is written to the journal (beamdeck_agent_journal) before
%%% it starts, before each critical step and when it ends, so that
%%% - a repeated command id is never executed twice: it is answered with
%%%   the recorded state or outcome, also after an agent or node restart;
%%% - a step interrupted by a node restart (a failed install_release after
%%%   its point of no return restarts the node; restart_new_emulator reboots
%%%   it) gets an outcome inferred from the release statuses at the next start;
%%% - results of commands that finished while the server was unreachable are
%%%   delivered: on every (re)connect the results of the last ?REPLAY
%%%   finished commands are sent again (the server treats a repeated
%%%   command_result as idempotent, keyed by commandId).
%%%
%%% This module is the command server; the steps are
%%% beamdeck_agent_upgrade_steps, the outcome inferred after a restart
%%% beamdeck_agent_upgrade_infer, the deaths around a step beamdeck_agent_deaths.
%%%
%%% Over 400 lines because the command server's state (journal, the running
%%% command, reviewed plans, watched processes, the fallback's notice) is one
%%% record its callbacks share; the steps themselves are _upgrade_steps.
-module(beamdeck_agent_upgrade).

-behaviour(gen_server).

-export([start_link/0, start_link/1, request/2, internal_command/1, connected/0, status/1, step_reached/2,
         reviewed/1, lone_deaths/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, handle_continue/2]).

-define(SERVER, ?MODULE).
-define(RUNNER, beamdeck_agent_upgrade_runner).
-define(CALL_TIMEOUT, 4000).
-define(REPLAY, 10).
-define(MAX_REVIEWED, 8).
-define(MAX_REVIEWED_KILLS, 50000).
-define(MAX_LONE, 100).
-define(FALLBACK_MIN_MS, 1000).
-define(FALLBACK_MAX_MS, 86400000).

-record(st, {journal :: beamdeck_agent_journal:journal(),
             running = none :: none | #{id := binary(), pid := pid(), mref := reference()},
             sink :: fun((map()) -> term()),
             exec :: fun((atom(), map(), map()) -> outcome()),
             infer :: fun((map()) -> outcome()),
             watch = [] :: [module()],
             %% The facts of the newest plans the agent answered, newest
             %% first: a gate that accepts a plan by digest accepts these.
             reviewed = [] :: [{binary(), beamdeck_agent_gate:facts()}],
             %% The processes the last install's verification found alive
             %% though no suspend reached them (not_suspended): monitored
             %% until the next install, so make_permanent's verification
             %% can say why one died in between.
             lone = #{} :: #{reference() => pid()},
             lone_deaths = #{} :: #{binary() => binary()}}).

-type outcome() :: {ok, map()} | {error, atom(), binary(), map() | null}.
-type opts() :: #{state_dir => string(), sink => fun((map()) -> term()),
                  exec => fun((atom(), map(), map()) -> outcome()),
                  infer => fun((map()) -> outcome())}.

%%% API %%%

%% @doc Start the server, registered as `beamdeck_agent_upgrade'.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> start_link(#{}).

%% @doc Start with options (tests): `state_dir' (journal directory), `sink'
%% (where frames go; default beamdeck_agent_conn:send/1), `exec' and
%% `infer' (replace the steps and the restart inference).
-spec start_link(Opts) -> {ok, pid()} | {error, term()} when Opts :: opts().
start_link(Opts) ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, Opts, []).

%% @doc One server request (called by beamdeck_agent_requests):
%% `releases', `upgrade_plan', `old_code' or `upgrade_command'.
-spec request(Method, Params) -> {ok, map()} | {error, atom(), binary()}
    when Method :: binary(), Params :: map().
request(<<"releases">>, Params) ->
    beamdeck_agent_release:state(Params);
request(<<"upgrade_plan">>, Params) ->
    case beamdeck_agent_plan:plan_facts(Params, #{rollback_choices => recorded_choices()}) of
        {ok, #{digest := Digest} = Json, Facts} ->
            gen_server:cast(?SERVER, {reviewed, Digest, Facts}),
            {ok, Json};
        {error, _, _} = E -> E
    end;
request(<<"old_code">>, _Params) ->
    {ok, beamdeck_agent_old_code:old_code(watched())};
request(<<"upgrade_command">>, Params) ->
    case command(Params) of
        {ok, Cmd} ->
            try gen_server:call(?SERVER, {command, Cmd}, ?CALL_TIMEOUT)
            catch exit:{noproc, _} ->
                    {error, unavailable, <<"the upgrade service of the agent is not running">>};
                  exit:{timeout, _} ->
                    {error, timeout, <<"the upgrade service did not answer in time">>}
            end;
        {error, _, _} = E -> E
    end;
request(Method, _Params) ->
    {error, unknown_method, <<"unknown method: ", Method/binary>>}.

%% @doc A command from the agent itself (the fallback timer's rollback),
%% already validated: run and journaled like the server's commands.
-spec internal_command(Cmd) -> {ok, map()} | {error, atom(), binary()} when Cmd :: map().
internal_command(Cmd) ->
    try gen_server:call(?SERVER, {command, Cmd}, ?CALL_TIMEOUT)
    catch exit:{noproc, _} ->
            {error, unavailable, <<"the upgrade service of the agent is not running">>};
          exit:{timeout, _} ->
            {error, timeout, <<"the upgrade service did not answer in time">>}
    end.

%% @doc Called by the connection after each `welcome': replay the results
%% of the last finished commands.
-spec connected() -> ok.
connected() -> gen_server:cast(?SERVER, connected).

%% @doc A command's journal entry as JSON (for tests and the CLI).
-spec status(CommandId) -> {ok, map()} | {error, not_found, binary()} when CommandId :: binary().
status(Id) ->
    gen_server:call(?SERVER, {status, Id}, ?CALL_TIMEOUT).

%% @doc In the runner: the command `Id' reached `Step' (kept in its journal
%% entry, so an interrupted command says where it stopped).
-spec step_reached(Id, Step) -> ok when Id :: binary(), Step :: binary().
step_reached(Id, Step) ->
    try gen_server:call(?SERVER, {step, Id, Step}, ?CALL_TIMEOUT) catch _:_ -> ok end,
    ok.

%% @doc In the runner: pid text → exit reason of the processes the last
%% install's verification watched that died since (empty when unknown).
-spec lone_deaths() -> #{binary() => binary()}.
lone_deaths() ->
    try gen_server:call(?SERVER, lone_deaths, ?CALL_TIMEOUT)
    catch exit:_ -> #{}
    end.

%% @doc In the runner: the facts of a plan this agent answered recently,
%% by its digest (`none' when it answered none with that digest).
-spec reviewed(Digest) -> beamdeck_agent_gate:facts() | none when Digest :: binary().
reviewed(Digest) ->
    try gen_server:call(?SERVER, {reviewed, Digest}, ?CALL_TIMEOUT)
    catch exit:_ -> none
    end.

%% The purge params of the last successful install of each version: a
%% rollback from that version reuses them unless told otherwise.
recorded_choices() ->
    try gen_server:call(?SERVER, recorded_choices, 2000)
    catch exit:_ -> #{}
    end.

watched() ->
    try gen_server:call(?SERVER, watch, 2000)
    catch exit:_ -> []
    end.

%% Validate the command params: commandId, action, vsn, purge, prePurge,
%% gate, and fallbackMs (install only; capability `fallback').
command(Params) ->
    Id = maps:get(<<"commandId">>, Params, undefined),
    Action = action(maps:get(<<"action">>, Params, undefined)),
    Vsn = maps:get(<<"vsn">>, Params, null),
    Fallback = maps:get(<<"fallbackMs">>, Params, null),
    if
        Fallback =/= null, Action =/= install ->
            {error, bad_request, <<"params.fallbackMs is for install only">>};
        Fallback =/= null andalso not (is_integer(Fallback) andalso Fallback >= ?FALLBACK_MIN_MS
                                       andalso Fallback =< ?FALLBACK_MAX_MS) ->
            {error, bad_request, <<"params.fallbackMs must be an integer from 1000 (1 s) to "
                                   "86400000 (24 h)">>};
        not is_binary(Id); byte_size(Id) =:= 0; byte_size(Id) > 128 ->
            {error, bad_request, <<"params.commandId must be a string of 1 to 128 bytes">>};
        Action =:= error ->
            {error, bad_request, <<"params.action must be unpack, install, make_permanent or rollback">>};
        Vsn =:= null, Action =/= rollback ->
            {error, bad_request, <<"params.vsn is required">>};
        Vsn =/= null andalso not (is_binary(Vsn) andalso byte_size(Vsn) > 0 andalso byte_size(Vsn) < 256) ->
            {error, bad_request, <<"params.vsn must be a release version string">>};
        true ->
            case {purge_param(Params, <<"purge">>), purge_param(Params, <<"prePurge">>),
                  beamdeck_agent_gate:parse(Params)} of
                {ok, ok, {ok, Gate}} ->
                    {ok, #{id => Id, action => Action, vsn => Vsn, gate => Gate, fallback_ms => Fallback,
                           params => maps:with([<<"purge">>, <<"prePurge">>], Params)}};
                {ok, ok, {error, _, _} = E} -> E;
                _ ->
                    {error, bad_request, <<"params.purge and params.prePurge must be objects of "
                                           "module name to \"soft\" or \"brutal\"">>}
            end
    end.

action(<<"unpack">>) -> unpack;
action(<<"install">>) -> install;
action(<<"make_permanent">>) -> make_permanent;
action(<<"rollback">>) -> rollback;
action(_) -> error.

purge_param(Params, Key) ->
    case maps:get(Key, Params, null) of
        null -> ok;
        M when is_map(M), map_size(M) =< 1000 -> ok;
        _ -> error
    end.

%%% SERVER %%%

%% @private
-spec init(Opts) -> {ok, #st{}, {continue, recover}} when Opts :: opts().
init(Opts) ->
    ok = beamdeck_agent_lint:new_cache(),
    Dir = maps:get(state_dir, Opts, beamdeck_agent_journal:default_dir()),
    J = beamdeck_agent_journal:open(Dir),
    St = #st{journal = J,
             sink = maps:get(sink, Opts, fun beamdeck_agent_conn:send/1),
             exec = maps:get(exec, Opts, fun beamdeck_agent_upgrade_steps:execute/3),
             infer = maps:get(infer, Opts, fun beamdeck_agent_upgrade_infer:infer/1),
             watch = watch_from(beamdeck_agent_journal:entries(J))},
    {ok, St, {continue, recover}}.

%% A step that was running when the agent (or the node) stopped: adopt its
%% runner if it still runs, else infer its outcome from the releases.
%% @private
-spec handle_continue(Continue, State) -> {noreply, #st{}} when Continue :: recover, State :: #st{}.
handle_continue(recover, #st{journal = J} = St) ->
    case [E || #{status := running} = E <- beamdeck_agent_journal:entries(J)] of
        [] -> {noreply, St};
        [#{id := Id} = E | Others] ->
            St1 = lists:foldl(fun(O, S) -> finish(O, {error, interrupted,
                                                      <<"interrupted: another command was running">>, null}, S)
                              end, St, Others),
            case whereis(?RUNNER) of
                Pid when is_pid(Pid) ->
                    {noreply, St1#st{running = #{id => Id, pid => Pid,
                                                 mref => erlang:monitor(process, Pid)}}};
                undefined ->
                    Infer = St#st.infer,
                    {noreply, spawn_runner(Id, fun() -> Infer(E) end, St1)}
            end
    end.

%% @private
-spec handle_call(Request, From, State) -> {reply, term(), #st{}}
    when Request :: term(), From :: gen_server:from(), State :: #st{}.
handle_call({command, #{id := Id} = Cmd}, _From, #st{journal = J} = St) ->
    case beamdeck_agent_journal:find(Id, J) of
        {ok, #{status := done} = E} ->
            send_result(E, St),
            {reply, {ok, duplicate_json(E)}, St};
        {ok, E} ->
            {reply, {ok, duplicate_json(E)}, St};
        error ->
            start_command(Cmd, St)
    end;
handle_call({status, Id}, _From, #st{journal = J} = St) ->
    case beamdeck_agent_journal:find(Id, J) of
        {ok, E} -> {reply, {ok, entry_json(E)}, St};
        error -> {reply, {error, not_found, <<"no command ", Id/binary>>}, St}
    end;
handle_call({step, Id, Step}, _From, #st{journal = J} = St) ->
    case beamdeck_agent_journal:find(Id, J) of
        {ok, #{status := running} = E} -> {reply, ok, put_entry(E#{step => Step}, St)};
        _ -> {reply, ok, St}
    end;
handle_call({reviewed, Digest}, _From, #st{reviewed = R} = St) ->
    {reply, proplists:get_value(Digest, R, none), St};
handle_call(lone_deaths, _From, St) ->
    {reply, St#st.lone_deaths, St};
handle_call(watch, _From, St) ->
    {reply, St#st.watch, St};
handle_call(recorded_choices, _From, #st{journal = J} = St) ->
    {reply, beamdeck_agent_upgrade_steps:choices_by_vsn(beamdeck_agent_journal:entries(J)), St};
handle_call(_Other, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(Msg, State) -> {noreply, #st{}} when Msg :: term(), State :: #st{}.
handle_cast({reviewed, Digest, Facts}, #st{reviewed = R} = St) ->
    %% Bounded: a plan with more kills than this is accepted by its exact
    %% digest only (the recomputed plan must be the same).
    case length(beamdeck_agent_gate:killed(Facts)) =< ?MAX_REVIEWED_KILLS of
        true ->
            {noreply, St#st{reviewed = lists:sublist([{Digest, Facts} | proplists:delete(Digest, R)],
                                                     ?MAX_REVIEWED)}};
        false -> {noreply, St}
    end;
handle_cast(connected, #st{journal = J} = St) ->
    [send_result(E, St) || E <- lists:reverse(beamdeck_agent_journal:recent(?REPLAY, J))],
    {noreply, St};
handle_cast({done, Id, Outcome}, #st{running = #{id := Id, mref := Ref}} = St) ->
    erlang:demonitor(Ref, [flush]),
    {noreply, done(Id, Outcome, St#st{running = none})};
handle_cast({done, Id, Outcome}, #st{running = none, journal = J} = St) ->
    %% The runner of a previous incarnation of this server.
    case beamdeck_agent_journal:find(Id, J) of
        {ok, #{status := running}} -> {noreply, done(Id, Outcome, St)};
        _ -> {noreply, St}
    end;
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(Info, State) -> {noreply, #st{}} when Info :: term(), State :: #st{}.
handle_info({'DOWN', Ref, process, _Pid, Reason}, #st{running = #{id := Id, mref := Ref}} = St) ->
    Msg = iolist_to_binary(["the command's runner died: ", text(Reason)]),
    {noreply, done(Id, {error, internal, Msg, null}, St#st{running = none})};
handle_info({'DOWN', Ref, process, Pid, Reason}, #st{lone = Lone, lone_deaths = D} = St)
  when is_map_key(Ref, Lone) ->
    {noreply, St#st{lone = maps:remove(Ref, Lone),
                    lone_deaths = D#{beamdeck_agent_terms:pid(Pid) => text(Reason)}}};
handle_info(_Msg, St) ->
    {noreply, St}.

start_command(_Cmd, #st{running = #{id := Other}, journal = J} = St) ->
    What = case beamdeck_agent_journal:find(Other, J) of
               {ok, #{action := A, vsn := V}} -> io_lib:format(" (~ts ~ts)", [A, vsn_text(V)]);
               _ -> ""
           end,
    {reply, {error, busy, iolist_to_binary(["command ", Other, What,
                                            " is running; one upgrade at a time"])}, St};
start_command(#{id := Id, action := Action, vsn := Vsn, params := Params} = Cmd, #st{journal = J} = St) ->
    Entry = #{id => Id, action => Action, vsn => Vsn, params => Params, status => running,
              step => atom_to_binary(Action, utf8), startedAt => beamdeck_agent_terms:now_ms(), finishedAt => null,
              ok => null, result => null, error => null, inferred => false,
              bootId => boot_id(), node => atom_to_binary(node(), utf8)},
    case beamdeck_agent_journal:put(Entry, J) of
        {ok, J1} ->
            Exec = St#st.exec,
            Sink = St#st.sink,
            Ctx = #{id => Id, sink => Sink, journal => beamdeck_agent_journal:entries(J1)},
            St1 = spawn_runner(Id, fun() -> Exec(Action, Cmd, Ctx) end, St#st{journal = J1}),
            {reply, {ok, #{accepted => true, commandId => Id, duplicate => false,
                           status => running}}, St1};
        {error, Why, _} ->
            %% Without the journal a repeated id could run twice: refuse.
            {reply, {error, journal_failed, Why}, St}
    end.

%% The runner registers itself, so a restarted server can find it; it is
%% not linked: a step must finish on the node whatever happens to us.
spawn_runner(Id, Fun, St) ->
    Server = self(),
    {Pid, Ref} = spawn_monitor(
                   fun() ->
                           Outcome = try register(?RUNNER, self()) of
                                         true ->
                                             try Fun()
                                             catch Class:Reason:Stack ->
                                                     {error, internal,
                                                      text({Class, Reason, lists:sublist(Stack, 4)}), null}
                                             end
                                     catch
                                         error:badarg -> busy()
                                     end,
                           gen_server:cast(case whereis(?SERVER) of
                                               undefined -> Server;
                                               S -> S
                                           end, {done, Id, Outcome})
                   end),
    St#st{running = #{id => Id, pid => Pid, mref => Ref}}.

done(Id, Outcome, #st{journal = J} = St) ->
    case beamdeck_agent_journal:find(Id, J) of
        {ok, E} -> finish(E, Outcome, St);
        error -> St
    end.

finish(E, Outcome, St) ->
    E1 = case Outcome of
             {ok, Result} ->
                 E#{status => done, ok => true, result => Result, error => null};
             {error, Code, Msg, Result} ->
                 E#{status => done, ok => false, result => Result,
                    error => #{code => Code, message => Msg}}
         end,
    E2 = E1#{finishedAt => beamdeck_agent_terms:now_ms(),
             inferred => is_map(maps:get(result, E1)) andalso
                 maps:get(inferred, maps:get(result, E1), false) =:= true},
    St1 = put_entry(E2, St),
    send_result(E2, St1),
    fallback_done(E2),
    watch_lone(Outcome, St1#st{watch = watch_from(beamdeck_agent_journal:entries(St1#st.journal))}).

%% After an install or rollback: monitor the processes its verification
%% found alive without a suspend reaching them (bounded), instead of the
%% previous ones.
watch_lone({ok, #{action := A, verification := #{processes := Ps}}}, #st{lone = Old} = St)
  when A =:= install; A =:= rollback ->
    _ = [erlang:demonitor(R, [flush]) || R <- maps:keys(Old)],
    Pids = [Pid || #{pid := P, alive := true} <- lists:sublist(Ps, ?MAX_LONE),
                   Pid <- [try list_to_pid(binary_to_list(P)) catch error:badarg -> none end],
                   is_pid(Pid)],
    St#st{lone = maps:from_list([{erlang:monitor(process, P), P} || P <- Pids]), lone_deaths = #{}};
watch_lone(_, St) ->
    St.

put_entry(E, #st{journal = J} = St) ->
    case beamdeck_agent_journal:put(E, J) of
        {ok, J1} -> St#st{journal = J1};
        {error, Why, J1} ->
            logger:warning("beamdeck agent: cannot write the command journal: ~ts", [Why]),
            St#st{journal = J1}
    end.

%% The fallback timer learns of every finished command (a make_permanent
%% or rollback clears it; its own rollback ends it).
fallback_done(#{id := Id, action := Action, ok := Ok}) ->
    case whereis(beamdeck_agent_fallback) of
        undefined -> ok;
        _ -> beamdeck_agent_fallback:command_done(Id, Action, Ok =:= true)
    end.

busy() ->
    {error, busy, <<"another upgrade step is still running on this node">>, null}.

send_result(#{id := Id, ok := Ok} = E, #st{sink = Sink}) ->
    Frame0 = #{type => command_result, commandId => Id, ok => Ok =:= true,
               result => maps:get(result, E)},
    Frame = case maps:get(error, E) of
                null -> Frame0;
                Err -> Frame0#{error => Err}
            end,
    %% A sink that fails (connection gone) must not take the server down.
    try Sink(Frame) catch _:_ -> ok end,
    ok.

duplicate_json(E) ->
    (entry_json(E))#{accepted => true, duplicate => true}.

entry_json(#{id := Id} = E) ->
    #{commandId => Id, action => maps:get(action, E), vsn => maps:get(vsn, E),
      status => maps:get(status, E), step => maps:get(step, E), ok => maps:get(ok, E),
      result => maps:get(result, E), error => maps:get(error, E),
      startedAt => maps:get(startedAt, E), finishedAt => maps:get(finishedAt, E),
      inferred => maps:get(inferred, E, false)}.

%% Modules of the newest install or rollback: the old_code request lists
%% them even when nothing runs their old code.
watch_from(Entries) ->
    case [M || #{action := A, result := #{modules := Ms}} <- Entries,
               A =:= install orelse A =:= rollback, M <- [Ms]] of
        [Ms | _] -> [A || B <- Ms, is_binary(B), A <- [existing_atom(B)], A =/= undefined];
        [] -> []
    end.

existing_atom(B) ->
    try binary_to_existing_atom(B, utf8) catch error:badarg -> undefined end.

%%% HELPERS %%%

boot_id() ->
    try beamdeck_agent_config:boot_id() catch _:_ -> null end.

vsn_text(null) -> "";
vsn_text(V) -> V.

text(T) -> beamdeck_agent_terms:text(T, 2000).
