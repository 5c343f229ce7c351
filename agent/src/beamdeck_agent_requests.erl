%%% @doc Answers to the server's `request' frames (docs/protocol.md).
%%%
%%% `beamdeck_agent_conn' runs `handle/2' in a worker process that it kills
%%% when the request's time is up, so a handler may block; it must not
%%% crash the caller, hence every handler runs inside a catch here.
-module(beamdeck_agent_requests).

-export([handle/2]).

-define(UPGRADE_METHODS, [<<"releases">>, <<"upgrade_plan">>, <<"upgrade_command">>, <<"old_code">>]).

%% The last result clause guards against handlers breaking their contract;
%% dialyzer knows they do not, today.
-dialyzer({no_match, handle/2}).

%% @doc Dispatch one request. `{ok, Result}' or `{error, Code, Message}'.
-spec handle(Method, Params) -> {ok, map()} | {error, Code :: atom(), Message :: binary()}
    when Method :: binary(), Params :: map().
handle(Method, Params) when is_binary(Method), is_map(Params) ->
    try dispatch(Method, Params) of
        {ok, Result} = Ok when is_map(Result) -> Ok;
        {error, Code, Msg} = Err when is_atom(Code), is_binary(Msg) -> Err;
        {error, Code, Msg} when is_atom(Code) -> {error, Code, text(Msg)};
        Other -> {error, internal, iolist_to_binary(["bad handler result: ", text(Other)])}
    catch
        Class:Reason:Stack ->
            {error, internal, text({Class, Reason, lists:sublist(Stack, 3)})}
    end;
handle(Method, _Params) when is_binary(Method) ->
    {error, bad_request, <<"params must be an object">>};
handle(_Method, _Params) ->
    {error, bad_request, <<"method must be a string">>}.

dispatch(<<"process_detail">>, Params) ->
    case maps:get(<<"pid">>, Params, undefined) of
        Pid when is_binary(Pid) ->
            case available(beamdeck_agent_detail, fetch, 1) of
                true -> beamdeck_agent_detail:fetch(Pid);
                false -> {error, unavailable, <<"process detail is not available in this agent build">>}
            end;
        _ -> {error, bad_request, <<"params.pid must be a string">>}
    end;
dispatch(<<"find_processes">>, Params) ->
    case available(beamdeck_agent_find, find, 1) of
        true -> beamdeck_agent_find:find(Params);
        false -> {error, unavailable, <<"finding processes by module is not available in this agent build">>}
    end;
dispatch(<<"refresh">>, _Params) ->
    case available(beamdeck_agent_sampler, resync, 0) of
        true -> _ = beamdeck_agent_sampler:resync(), ok;
        false -> ok
    end,
    {ok, #{}};
dispatch(<<"system_overview">>, _Params) ->
    system(fun beamdeck_agent_system:overview/0, []);
dispatch(<<"ets_tables">>, Params) ->
    system(fun beamdeck_agent_system:ets_tables/1, [Params]);
dispatch(<<"ports">>, Params) ->
    system(fun beamdeck_agent_system:ports/1, [Params]);
dispatch(Method, Params) ->
    case lists:member(Method, ?UPGRADE_METHODS) andalso available(beamdeck_agent_upgrade, request, 2) of
        true -> beamdeck_agent_upgrade:request(Method, Params);
        false -> {error, unknown_method, <<"unknown method: ", (cap(Method))/binary>>}
    end.

system(Fun, Args) ->
    case available(beamdeck_agent_system, overview, 0) of
        true -> apply(Fun, Args);
        false -> {error, unavailable, <<"system views are not available in this agent build">>}
    end.

%% Modules written by others may be absent from a partial build.
available(Mod, Fun, Arity) ->
    code:ensure_loaded(Mod) =:= {module, Mod} andalso erlang:function_exported(Mod, Fun, Arity).

cap(Bin) when byte_size(Bin) > 100 -> <<(binary:part(Bin, 0, 100))/binary, "...">>;
cap(Bin) -> Bin.

text(Term) -> beamdeck_agent_terms:text(Term, 1000).
