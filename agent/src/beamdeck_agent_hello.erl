%%% @doc The `hello' frame the agent sends first on every connection
%%% (docs/protocol.md): who the node is, what runs on it, and the optional
%%% protocol-1 fields this agent sends (`capabilities').
-module(beamdeck_agent_hello).

-export([hello/1]).

-define(PROTOCOL, 1).
-define(MAX_APPS, 500).
-define(MAX_RELEASES, 50).


%% @doc The `hello' frame (docs/protocol.md). Every part that asks another
%% process has a timeout or a fallback: a reconnect must not hang on a busy
%% application controller or release handler.
-spec hello(Opts) -> map() when Opts :: beamdeck_agent_conn:opts().
hello(Opts) ->
    Releases = releases(),
    Hello = #{type => hello,
      protocol => ?PROTOCOL,
      node => maps:get(node, Opts, beamdeck_agent_config:node_name()),
      bootId => beamdeck_agent_config:boot_id(),
      agentVersion => beamdeck_agent_config:agent_version(),
      otpRelease => list_to_binary(erlang:system_info(otp_release)),
      ertsVersion => list_to_binary(erlang:system_info(version)),
      systemVersion => unicode:characters_to_binary(string:trim(erlang:system_info(system_version))),
      distributed => erlang:is_alive(),
      startedAt => erlang:convert_time_unit(erlang:system_info(start_time) + erlang:time_offset(),
                                            native, millisecond),
      processCount => erlang:system_info(process_count),
      processLimit => erlang:system_info(process_limit),
      schedulers => erlang:system_info(schedulers),
      applications => applications(),
      releases => Releases,
      capabilities => capabilities(),
      config => #{getState => beamdeck_agent_config:get(get_state) =:= true},
      lastEventSeq => last_event_seq()},
    case group(Releases) of
        undefined -> Hello;
        Group -> Hello#{group => Group}
    end.

%% The node's group for fleets: the `group' setting, else the name of the
%% release it runs (nodes of one release form a group by default).
group(Releases) ->
    case beamdeck_agent_config:get(group) of
        G when is_binary(G), G =/= <<>> -> G;
        G when is_list(G), G =/= [] -> unicode:characters_to_binary(G);
        _ when is_list(Releases) ->
            Running = [R || #{status := S} = R <- Releases, S =:= current]
                ++ [R || #{status := S} = R <- Releases, S =:= permanent],
            case Running of
                [#{name := Name} | _] -> Name;
                [] -> undefined
            end;
        _ -> undefined
    end.

applications() ->
    try application:which_applications(5000) of
        Apps ->
            [#{name => N, vsn => text(V), description => text(Desc)}
             || {N, Desc, V} <- lists:sublist(Apps, ?MAX_APPS)]
    catch _:_ -> []
    end.

releases() ->
    case whereis(release_handler) of
        undefined -> null;
        _ ->
            case beamdeck_agent_otp:call(fun release_handler:which_releases/0, 2000) of
                {ok, Rels} when is_list(Rels) ->
                    [#{name => text(N), vsn => text(V), status => S, apps => [text(A) || A <- Apps]}
                     || {N, V, Apps, S} <- lists:sublist(Rels, ?MAX_RELEASES)];
                _ -> null
            end
    end.

capabilities() ->
    Mods = [{procs, beamdeck_agent_sampler}, {tree, beamdeck_agent_sampler},
            {detail, beamdeck_agent_detail}, {events, beamdeck_agent_events},
            {upgrade, beamdeck_agent_upgrade}, {system, beamdeck_agent_system},
            {gates, beamdeck_agent_gate}, {verification, beamdeck_agent_check_verify},
            %% Plans carry `afterKill' per killed process (optional protocol-1 field).
            {after_kill, beamdeck_agent_restarts},
            %% Install commands take `fallbackMs' (optional protocol-1 field).
            {fallback, beamdeck_agent_fallback}],
    Caps = [Cap || {Cap, M} <- Mods, code:ensure_loaded(M) =:= {module, M}],
    %% Optional protocol-1 fields this agent sends (docs/protocol.md).
    Optional = [{events, dropped_seqs}, {events, crash_frames}, {detail, message_preview}, {procs, labels},
                {verification, verified_processes}],
    Caps ++ [Field || {Cap, Field} <- Optional, lists:member(Cap, Caps)]
        ++ [find_processes || code:ensure_loaded(beamdeck_agent_find) =:= {module, beamdeck_agent_find}]
        ++ beamdeck_agent_sampler:capabilities().

%% The seq counter outlives the events process (persistent_term), so this
%% holds while that process restarts: the server compares it with what it
%% stored to spot seqs this agent never sent.
last_event_seq() ->
    try beamdeck_agent_events:last_seq() of
        N when is_integer(N), N >= 0 -> N;
        _ -> 0
    catch _:_ -> 0
    end.

%%% HELPERS %%%

text(B) when is_binary(B) -> B;
text(A) when is_atom(A) -> atom_to_binary(A, utf8);
text(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> printed(L)
    end;
text(T) -> printed(T).

printed(Term) -> beamdeck_agent_terms:text(Term, 500).
