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
-module(beamdeck_agent_upgrade).

-behaviour(gen_server).

-export([start_link/0, start_link/1, request/2, connected/0, status/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, handle_continue/2]).

-define(SERVER, ?MODULE).
-define(RUNNER, beamdeck_agent_upgrade_runner).
-define(CALL_TIMEOUT, 4000).
-define(REPLAY, 10).
-define(STEP_TIMEOUT, 900000).
-define(UNPACK_TIMEOUT, 300000).
-define(SETTLE_MS, 300).
-define(MAX_SETTLE_MS, 3000).
-define(MAX_WATCH, 20000).
-define(MAX_DEATHS, 500).
-define(INFER_TRIES, 20).
-define(REBOOT_WAIT, 120000).
-define(MAX_REVIEWED, 8).
-define(MAX_REVIEWED_KILLS, 50000).

-record(st, {journal :: beamdeck_agent_journal:journal(),
             running = none :: none | #{id := binary(), pid := pid(), mref := reference()},
             sink :: fun((map()) -> term()),
             exec :: fun((atom(), map(), map()) -> outcome()),
             infer :: fun((map()) -> outcome()),
             watch = [] :: [module()],
             %% The facts of the newest plans the agent answered, newest
             %% first: a gate that accepts a plan by digest accepts these.
             reviewed = [] :: [{binary(), beamdeck_agent_gate:facts()}]}).

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
    case beamdeck_agent_preview:plan_facts(Params, #{rollback_choices => recorded_choices()}) of
        {ok, #{digest := Digest} = Json, Facts} ->
            gen_server:cast(?SERVER, {reviewed, Digest, Facts}),
            {ok, Json};
        {error, _, _} = E -> E
    end;
request(<<"old_code">>, _Params) ->
    {ok, beamdeck_agent_preview:old_code(watched())};
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

%% @doc Called by the connection after each `welcome': replay the results
%% of the last finished commands.
-spec connected() -> ok.
connected() -> gen_server:cast(?SERVER, connected).

%% @doc A command's journal entry as JSON (for tests and the CLI).
-spec status(CommandId) -> {ok, map()} | {error, not_found, binary()} when CommandId :: binary().
status(Id) ->
    gen_server:call(?SERVER, {status, Id}, ?CALL_TIMEOUT).

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

%% Validate the command params: commandId, action, vsn, purge, prePurge, gate.
command(Params) ->
    Id = maps:get(<<"commandId">>, Params, undefined),
    Action = action(maps:get(<<"action">>, Params, undefined)),
    Vsn = maps:get(<<"vsn">>, Params, null),
    if
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
                    {ok, #{id => Id, action => Action, vsn => Vsn, gate => Gate,
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
             exec = maps:get(exec, Opts, fun execute/3),
             infer = maps:get(infer, Opts, fun infer/1),
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
handle_call(watch, _From, St) ->
    {reply, St#st.watch, St};
handle_call(recorded_choices, _From, #st{journal = J} = St) ->
    {reply, choices_by_vsn(beamdeck_agent_journal:entries(J)), St};
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
              step => atom_to_binary(Action, utf8), startedAt => now_ms(), finishedAt => null,
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
    E2 = E1#{finishedAt => now_ms(),
             inferred => is_map(maps:get(result, E1)) andalso
                 maps:get(inferred, maps:get(result, E1), false) =:= true},
    St1 = put_entry(E2, St),
    send_result(E2, St1),
    St1#st{watch = watch_from(beamdeck_agent_journal:entries(St1#st.journal))}.

put_entry(E, #st{journal = J} = St) ->
    case beamdeck_agent_journal:put(E, J) of
        {ok, J1} -> St#st{journal = J1};
        {error, Why, J1} ->
            logger:warning("beamdeck agent: cannot write the command journal: ~ts", [Why]),
            St#st{journal = J1}
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

%%% STEPS (in the runner) %%%

%% @private The default executor of a command's action.
-spec execute(Action, Command, Ctx) -> outcome() when Action :: atom(), Command :: map(), Ctx :: map().
execute(unpack, Cmd, Ctx) -> unpack(Cmd, Ctx);
execute(install, Cmd, Ctx) -> install(Cmd, Ctx);
execute(make_permanent, Cmd, Ctx) -> make_permanent(Cmd, Ctx);
execute(rollback, Cmd, Ctx) -> rollback(Cmd, Ctx).

unpack(#{vsn := VsnB}, Ctx) ->
    Vsn = binary_to_list(VsnB),
    #{rels := Rels} = beamdeck_agent_release:releases_info(),
    case [R || #{vsn := V} = R <- Rels, V =:= Vsn] of
        [#{status := S} | _] ->
            {ok, #{action => unpack, vsn => VsnB, alreadyUnpacked => true, status => S,
                   releases => rels_json(Rels)}};
        [] ->
            case [N || #{name := N} <- Rels] of
                [] -> {error, not_found, <<"no release is installed on this node">>, null};
                [Name | _] ->
                    Pkg = Name ++ "-" ++ Vsn,
                    Tar = filename:join(beamdeck_agent_release:rel_dir(), Pkg ++ ".tar.gz"),
                    case filelib:is_regular(Tar) of
                        false ->
                            {error, not_found, fmt("no release package ~ts", [Tar]), null};
                        true ->
                            step(Ctx, <<"unpack_release">>, fmt("unpack_release(~0tp)", [Pkg])),
                            case rh(fun() -> release_handler:unpack_release(Pkg) end, ?UNPACK_TIMEOUT) of
                                {ok, Vsn} ->
                                    Copied = ensure_sys_config(Vsn, Rels),
                                    progress(Ctx, <<"unpack_release">>, fmt("unpacked ~ts", [Vsn])),
                                    {ok, #{action => unpack, vsn => VsnB, package => bin(Pkg),
                                           alreadyUnpacked => false, sysConfigCopiedFrom => Copied,
                                           releases => rels_json(releases())}};
                                Other ->
                                    {error, unpack_failed,
                                     fmt("release_handler:unpack_release(~0tp) returned ~ts",
                                         [Pkg, text(Other)]), null}
                            end
                    end
            end
    end.

%% release_handler reads releases/VSN/sys.config when it installs; a
%% package without one gets the running release's (none: nothing copied).
ensure_sys_config(Vsn, Rels) ->
    RelDir = beamdeck_agent_release:rel_dir(),
    Target = filename:join([RelDir, Vsn, "sys.config"]),
    Running = case [V || #{vsn := V, status := current} <- Rels] ++
                       [V || #{vsn := V, status := permanent} <- Rels] of
                  [V | _] -> V;
                  [] -> undefined
              end,
    Source = filename:join([RelDir, str(Running), "sys.config"]),
    case Running =/= undefined andalso not filelib:is_regular(Target)
        andalso filelib:is_regular(Source) of
        true ->
            case file:copy(Source, Target) of
                {ok, _} -> bin(Source);
                _ -> null
            end;
        false -> null
    end.

install(#{vsn := VsnB, params := Params} = Cmd, Ctx) ->
    To = binary_to_list(VsnB),
    Rels = releases(),
    Current = status_vsn(current, Rels),
    Permanent = status_vsn(permanent, Rels),
    From = first_defined([Current, Permanent]),
    case [S || #{vsn := V, status := S} <- Rels, V =:= To] of
        [] ->
            Pkg = filename:join(beamdeck_agent_release:rel_dir(),
                                name(Rels) ++ "-" ++ To ++ ".tar.gz"),
            case filelib:is_regular(Pkg) of
                true -> {error, not_unpacked, fmt("release ~ts is a package (~ts): unpack it first",
                                                   [To, Pkg]), null};
                false -> {error, not_found, fmt("no release ~ts on this node", [To]), null}
            end;
        [S | _] when S =:= current; S =:= permanent ->
            {error, already_installed, fmt("release ~ts is already installed (~ts)", [To, S]), null};
        [_ | _] when From =:= undefined ->
            {error, not_found, <<"no release is running">>, null};
        [_ | _] ->
            install_path(install, Cmd, Ctx, From, To, {Params, strict}, To =/= Permanent)
    end.

install_path(Action, #{vsn := VsnB0} = Cmd, Ctx, From, To, {Params, Mode}, PermanentStep) ->
    VsnB = case VsnB0 of null -> bin(To); _ -> VsnB0 end,
    case beamdeck_agent_release:path(From, To) of
        {error, Code, Msg} -> {error, Code, Msg, null};
        {ok, #{script := Orig} = Path} ->
            case beamdeck_agent_relup:choices(Params, Orig, Mode) of
                {error, Code, Msg} -> {error, Code, Msg, null};
                {ok, Choices} ->
                    install_gated(gate(Cmd, (maps:get(params, Cmd, #{}))#{<<"vsn">> => bin(To)}, Ctx),
                                  Action, VsnB, Ctx, From, To, Path, Choices, PermanentStep)
            end
    end.

install_gated({error, _, _, _} = Refused, _Action, _VsnB, _Ctx, _From, _To, _Path, _Choices, _Perm) ->
    Refused;
install_gated(ok, Action, VsnB, Ctx, From, To, Path, Choices, PermanentStep) ->
    #{script := Orig, relup_file := File, section := Section} = Path,
    {Script, _} = beamdeck_agent_relup:apply_choices(Orig, Choices),
    Mods = beamdeck_agent_relup:modules(Script),
    ModNames = [M || #{module := M} <- Mods],
    progress(Ctx, <<"preview">>, <<"predicting who dies">>),
    Loops = loops(ModNames),
    Preview = beamdeck_agent_preview:preview(
                Script, #{stage => install, loops => Loops, permanent_step => PermanentStep}),
    Predicted = fate_pids(Preview, killed, install),
    Key = case Section of up -> From; down -> To end,
    step(Ctx, <<"rewrite_relup">>, fmt("rewriting ~ts", [File])),
    case beamdeck_agent_relup:rewrite(File, Section, Key, Choices) of
        {error, Code, Msg} -> {error, Code, Msg, null};
        {ok, #{changes := Changes, orig := OrigFile}} ->
            progress(Ctx, <<"rewrite_relup">>,
                     fmt("~b purge setting(s) changed; original kept in ~ts",
                         [length(Changes), OrigFile])),
            RelupJson = #{file => bin(File), original => bin(OrigFile), section => Section,
                          changes => [change_json(C) || C <- Changes],
                          script => beamdeck_agent_release:script_json(Script, 300)},
            Base = #{action => Action, vsn => VsnB, from => bin(From), to => bin(To),
                     direction => maps:get(direction, Path),
                     choices => beamdeck_agent_relup:choices_json(Choices),
                     modules => [atom_to_binary(M, utf8) || M <- ModNames],
                     relup => RelupJson},
            check_and_install(Ctx, To, File, Script, ModNames, Predicted, watch_pids(Preview), Base)
    end.

check_and_install(Ctx, To, File, Script, ModNames, Predicted, Watch, Base) ->
    step(Ctx, <<"check_install_release">>, fmt("check_install_release(~0tp)", [To])),
    case rh(fun() -> release_handler:check_install_release(To) end, ?STEP_TIMEOUT) of
        {ok, _, _} ->
            progress(Ctx, <<"check_install_release">>, <<"check_install_release ok">>),
            step(Ctx, <<"install_release">>, fmt("install_release(~0tp)", [To])),
            Mon = watch(Watch),
            Res = rh(fun() -> release_handler:install_release(To) end, ?STEP_TIMEOUT),
            Deaths = deaths(Mon, Predicted),
            Result = Base#{check => ok, installReply => text(Res), deaths => Deaths,
                           oldCode => beamdeck_agent_preview:old_code(ModNames),
                           verification => beamdeck_agent_check_verify:run(maps:get(from, Base), To),
                           releases => rels_json(releases())},
            Restart = beamdeck_agent_relup:restarts(Script),
            case Res of
                {ok, FromVsn, _Descr} when Restart =:= none ->
                    progress(Ctx, <<"install_release">>, fmt("installed ~ts (from ~ts)", [To, FromVsn])),
                    {ok, Result};
                {Ok, _, _} when Ok =:= ok; Ok =:= continue_after_restart ->
                    %% release_handler reboots the node now. The journal keeps
                    %% the step running: the outcome is inferred after the
                    %% reboot, from the release statuses.
                    step(Ctx, <<"restarting">>, fmt("~ts: the node restarts to finish the install", [Restart])),
                    timer:sleep(?REBOOT_WAIT),
                    {ok, Result#{restarting => true}};
                {error, {old_processes, M}} ->
                    _ = beamdeck_agent_relup:restore(File),
                    {error, old_processes,
                     fmt("install_release: processes run old code of ~ts (soft pre-purge): nothing "
                         "was installed", [M]), Result};
                Other ->
                    {error, install_failed, fmt("install_release(~0tp) returned ~ts", [To, text(Other)]),
                     Result}
            end;
        {error, {old_processes, M}} ->
            _ = beamdeck_agent_relup:restore(File),
            {error, old_processes,
             fmt("check_install_release: processes run old code of ~ts and its pre-purge is soft: "
                 "install_release would change nothing (the relup was put back as it was)", [M]),
             Base#{check => text({error, {old_processes, M}}),
                   oldCode => beamdeck_agent_preview:old_code(ModNames)}};
        Other ->
            _ = beamdeck_agent_relup:restore(File),
            {error, check_failed, fmt("check_install_release(~0tp) returned ~ts (the relup was put "
                                      "back as it was)", [To, text(Other)]),
             Base#{check => text(Other)}}
    end.

make_permanent(#{vsn := VsnB} = Cmd, Ctx) ->
    Vsn = binary_to_list(VsnB),
    Rels = releases(),
    case {[S || #{vsn := V, status := S} <- Rels, V =:= Vsn], status_vsn(permanent, Rels)} of
        {[current], Permanent} when Permanent =/= undefined ->
            case gate(Cmd, #{<<"vsn">> => VsnB}, Ctx) of
                ok -> permanent_step(Ctx, Permanent, Vsn, #{action => make_permanent, vsn => VsnB});
                Refused -> Refused
            end;
        {[permanent], _} ->
            {error, already_permanent, fmt("release ~ts is already permanent", [Vsn]), null};
        {[S], _} ->
            {error, bad_status, fmt("release ~ts is ~ts: install it first", [Vsn, S]), null};
        {[], _} ->
            {error, not_found, fmt("no release ~ts on this node", [Vsn]), null}
    end.

%% make_permanent brutally purges the brutal_purge modules of the script
%% as installed: exactly the processes on their old code die.
permanent_step(Ctx, Permanent, Vsn, Base) ->
    {Script, Mods} = case beamdeck_agent_release:path(Permanent, Vsn) of
                         {ok, #{on_disk := S}} -> {S, beamdeck_agent_relup:modules(S)};
                         _ -> {[], []}
                     end,
    ModNames = [M || #{module := M} <- Mods],
    Preview = beamdeck_agent_preview:preview(Script, #{stage => make_permanent}),
    Predicted = fate_pids(Preview, killed, make_permanent),
    Before = beamdeck_agent_preview:old_code(ModNames),
    step(Ctx, <<"make_permanent">>, fmt("make_permanent(~0tp)", [Vsn])),
    Mon = watch(watch_pids(Preview)),
    Res = rh(fun() -> release_handler:make_permanent(Vsn) end, ?STEP_TIMEOUT),
    Deaths = deaths(Mon, Predicted),
    Result = Base#{modules => [atom_to_binary(M, utf8) || M <- ModNames],
                   permanentReply => text(Res), deaths => Deaths, oldCodeBefore => Before,
                   oldCode => beamdeck_agent_preview:old_code(ModNames),
                   verification => beamdeck_agent_check_verify:run(Permanent, Vsn),
                   releases => rels_json(releases())},
    case Res of
        ok ->
            progress(Ctx, <<"make_permanent">>, fmt("~ts is permanent", [Vsn])),
            {ok, Result};
        Other ->
            {error, make_permanent_failed, fmt("make_permanent(~0tp) returned ~ts", [Vsn, text(Other)]),
             Result}
    end.

%% Back to the previous release through the relup's downgrade script: the
%% permanent one when the current release is not permanent yet, else the
%% `vsn' given. Without purge params, the choices of the install being
%% rolled back are used again (for the modules the downgrade changes).
rollback(#{vsn := VsnB, params := Params} = Cmd, Ctx) ->
    Rels = releases(),
    Current = status_vsn(current, Rels),
    Permanent = status_vsn(permanent, Rels),
    Target = case {VsnB, Current} of
                 {null, undefined} -> undefined;
                 {null, _} -> Permanent;
                 {_, _} -> binary_to_list(VsnB)
             end,
    From = first_defined([Current, Permanent]),
    if
        Target =:= undefined ->
            {error, bad_request, <<"nothing to roll back to: the running release is permanent; "
                                   "give the version to go back to (params.vsn)">>, null};
        Target =:= From ->
            {error, bad_request, fmt("release ~ts is the running release", [Target]), null};
        true ->
            {Choices, Mode} =
                case maps:is_key(<<"purge">>, Params) orelse maps:is_key(<<"prePurge">>, Params) of
                    true -> {Params, strict};
                    false -> {maps:get(bin(From), choices_by_vsn(maps:get(journal, Ctx, [])), #{}), lenient}
                end,
            case install_path(rollback, Cmd#{vsn := bin(Target)}, Ctx, From, Target,
                              {Choices, Mode}, Target =/= Permanent) of
                {ok, Result} ->
                    case [S || #{vsn := V, status := S} <- releases(), V =:= Target] of
                        [current] ->
                            P2 = status_vsn(permanent, releases()),
                            case permanent_step(Ctx, P2, Target, #{}) of
                                {ok, R2} -> {ok, Result#{makePermanent => R2}};
                                {error, Code, Msg, R2} -> {error, Code, Msg, Result#{makePermanent => R2}}
                            end;
                        _ -> {ok, Result}
                    end;
                Error -> Error
            end
    end.

%% The step's gate, right before it acts: the plan recomputed now (the same
%% computation as the upgrade_plan request) against what the command
%% accepts (beamdeck_agent_gate:check/3).
gate(Cmd, PlanParams, Ctx) ->
    progress(Ctx, <<"gate">>, <<"recomputing the plan to check it against the accepted one">>),
    Opts = #{rollback_choices => choices_by_vsn(maps:get(journal, Ctx, []))},
    case beamdeck_agent_preview:plan_facts(PlanParams, Opts) of
        {error, Code, Msg} -> {error, Code, Msg, null};
        {ok, _Json, Facts} ->
            Gate = maps:get(gate, Cmd, #{plan => null, max_kills => null, findings => []}),
            Reviewed = case maps:get(plan, Gate) of
                           null -> none;
                           Digest -> reviewed(Digest)
                       end,
            case beamdeck_agent_gate:check(Gate, Facts, Reviewed) of
                ok -> ok;
                {error, Code, Msg, Detail} -> {error, Code, Msg, #{gate => Detail}}
            end
    end.

reviewed(Digest) ->
    try gen_server:call(?SERVER, {reviewed, Digest}, ?CALL_TIMEOUT)
    catch exit:_ -> none
    end.

%% Version → the purge params (binary-keyed, as received) of its newest
%% successful install (entries are newest first).
choices_by_vsn(Entries) ->
    lists:foldr(fun(#{action := install, vsn := V, ok := true, params := P}, Acc) when is_binary(V) ->
                        Acc#{V => P};
                   (_, Acc) -> Acc
                end, #{}, Entries).

%%% INFERENCE AFTER A RESTART %%%

%% @private The outcome of a step that was running when the agent stopped,
%% from the release statuses now (release_handler may still be busy
%% finishing it: which_releases is retried).
-spec infer(Entry) -> outcome() when Entry :: map().
infer(#{action := Action, vsn := VsnB, step := Step} = E) ->
    Rels = releases_retry(?INFER_TRIES),
    Status = case VsnB of
                 null -> undefined;
                 _ -> case [S || #{vsn := V, status := S} <- Rels, V =:= binary_to_list(VsnB)] of
                          [S | _] -> S;
                          [] -> undefined
                      end
             end,
    Base = #{action => Action, vsn => VsnB, inferred => true, interruptedStep => Step,
             releases => rels_json(Rels),
             restartedNode => maps:get(bootId, E, null) =/= boot_id()},
    Ok = case Action of
             unpack -> Status =/= undefined;
             install -> Status =:= current orelse Status =:= permanent;
             make_permanent -> Status =:= permanent;
             rollback -> Status =:= current orelse Status =:= permanent
         end,
    case Ok of
        true -> {ok, Base#{status => Status}};
        false ->
            {error, interrupted,
             fmt("~ts ~ts was interrupted during ~ts (the agent or the node restarted) and did not "
                 "complete: the release is ~ts", [Action, vsn_text(VsnB), Step,
                                                    case Status of undefined -> "absent"; St0 -> St0 end]),
             Base#{status => Status}}
    end.

releases_retry(0) -> [];
releases_retry(N) ->
    case beamdeck_agent_release:releases_info() of
        #{stale := false, rels := Rels} -> Rels;
        #{handler := false, rels := Rels} -> Rels;
        _ -> timer:sleep(500), releases_retry(N - 1)
    end.

%%% DEATHS: PREDICTED AND ACTUAL %%%

fate_pids(#{modules := Mods}, Fate, When) ->
    lists:usort([P || #{entries := Es} <- Mods, #{pid := P, fate := F, 'when' := W} <- Es,
                      F =:= Fate, W =:= When]).

%% Processes to watch around a step: every process the preview names and
%% those linked to them (a kill spreads along links).
watch_pids(#{modules := Mods}) ->
    Named = lists:usort([P || #{entries := Es} <- Mods, #{pid := P} <- Es]
                        ++ [P || #{suspended_pids := Ps} <- Mods, P <- Ps]),
    Linked = [L || P <- Named, {links, Ls} <- [process_info(P, links)], L <- Ls, is_pid(L),
                   node(L) =:= node()],
    lists:sublist(lists:usort(Named ++ Linked) -- [self()], ?MAX_WATCH).

watch(Pids) ->
    maps:from_list([{erlang:monitor(process, P), {P, describe(P)}} || P <- Pids]).

describe(P) ->
    case process_info(P, [registered_name]) of
        [{registered_name, N}] when is_atom(N) ->
            #{name => beamdeck_agent_terms:maybe_atom(N), initialCall => initial_call(P)};
        _ -> #{name => null, initialCall => initial_call(P)}
    end.

initial_call(P) ->
    try beamdeck_agent_terms:maybe_mfa(proc_lib:translate_initial_call(P))
    catch _:_ -> null
    end.

%% Collect the DOWN messages of watched processes until things settle.
deaths(Mon, Predicted) ->
    Deadline = erlang:monotonic_time(millisecond) + ?MAX_SETTLE_MS,
    Died = settle(Mon, #{}, Deadline),
    _ = [erlang:demonitor(R, [flush]) || R <- maps:keys(Mon), not maps:is_key(R, Died)],
    DiedByPid = maps:from_list([{P, {Info, Reason}} || {_, {P, Info, Reason}} <- maps:to_list(Died)]),
    PredSet = maps:from_list([{P, true} || P <- Predicted]),
    Row = fun(P, Info, Reason) ->
                  Info#{pid => beamdeck_agent_terms:pid(P),
                        reason => case Reason of
                                      none -> null;
                                      _ -> text(Reason)
                                  end}
          end,
    #{predictedAndDied => cap([Row(P, I, R) || {P, {I, R}} <- maps:to_list(DiedByPid),
                                               maps:is_key(P, PredSet)]),
      predictedButAlive => cap([Row(P, describe(P), none) || P <- Predicted,
                                                             not maps:is_key(P, DiedByPid)]),
      diedUnpredicted => cap([Row(P, I, R) || {P, {I, R}} <- maps:to_list(DiedByPid),
                                              not maps:is_key(P, PredSet)]),
      predicted => length(Predicted), died => map_size(DiedByPid), watched => map_size(Mon)}.

settle(Mon, Died, Deadline) ->
    Left = Deadline - erlang:monotonic_time(millisecond),
    receive
        {'DOWN', Ref, process, P, Reason} when is_map_key(Ref, Mon) ->
            {P, Info} = maps:get(Ref, Mon),
            settle(Mon, Died#{Ref => {P, Info, Reason}}, Deadline)
    after min(max(Left, 0), ?SETTLE_MS) ->
        Died
    end.

cap(L) -> lists:sublist(L, ?MAX_DEATHS).

loops(Mods) ->
    maps:from_list([{M, case beamdeck_agent_lint:analyze_loaded(M) of
                            {ok, A} -> [{atom_to_binary(F, utf8), Ar}
                                        || {F, Ar} <- beamdeck_agent_lint:loops(A)];
                            {error, _} -> unknown
                        end} || M <- Mods, erlang:module_loaded(M)]).

%%% HELPERS %%%

%% release_handler calls in a helper with a (long) timeout; release_handler
%% itself is not interrupted when the caller gives up.
rh(Fun, Timeout) ->
    case beamdeck_agent_otp:call(Fun, Timeout) of
        {ok, Res} -> Res;
        {error, timeout} -> {error, {no_answer_from_release_handler, Timeout}};
        {error, Other} -> {error, Other}
    end.

step(#{id := Id} = Ctx, Step, Message) ->
    try gen_server:call(?SERVER, {step, Id, Step}, ?CALL_TIMEOUT) catch _:_ -> ok end,
    progress(Ctx, Step, Message).

progress(#{id := Id, sink := Sink}, Step, Message) ->
    try Sink(#{type => progress, commandId => Id, step => Step, message => Message,
               at => now_ms()})
    catch _:_ -> ok
    end,
    ok.

releases() ->
    maps:get(rels, beamdeck_agent_release:releases_info()).

rels_json(Rels) ->
    [#{vsn => bin(V), status => S} || #{vsn := V, status := S} <- Rels].

status_vsn(Status, Rels) ->
    case [V || #{vsn := V, status := S} <- Rels, S =:= Status] of
        [V | _] -> V;
        [] -> undefined
    end.

name(Rels) ->
    case Rels of
        [#{name := N} | _] -> N;
        [] -> "release"
    end.

first_defined([undefined | T]) -> first_defined(T);
first_defined([H | _]) -> H;
first_defined([]) -> undefined.

change_json(#{module := M, field := F, from := From, to := To}) ->
    #{module => atom_to_binary(M, utf8), field => F,
      from => beamdeck_agent_release:purge_json(From), to => beamdeck_agent_release:purge_json(To)}.

boot_id() ->
    try beamdeck_agent_config:boot_id() catch _:_ -> null end.

vsn_text(null) -> "";
vsn_text(V) -> V.

str(undefined) -> "";
str(S) -> S.

bin(S) when is_list(S) -> unicode:characters_to_binary(S);
bin(B) when is_binary(B) -> B.

now_ms() -> beamdeck_agent_terms:now_ms().

text(T) -> maps:get(text, beamdeck_agent_terms:printed(T, 2000)).

fmt(Format, Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args)).
