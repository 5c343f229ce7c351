%%% @doc A server request's reply, made in the request's worker process
%%% (beamdeck_agent_conn spawns one per request): the handler's result as a
%%% `reply' frame, encoded. Nothing here touches the connection's state, so
%%% a handler that crashes or returns what JSON cannot hold costs an error
%%% reply, never the connection.
-module(beamdeck_agent_reply).

-export([run_request/5, reply_bin/2]).

%% @doc Runs in the worker: the handler, then the encoding (a result JSON
%% cannot hold becomes an `internal' error rather than a crash of the
%% connection; one above the frame cap, which the server would refuse,
%% `too_large').
-spec run_request(Handler, Id, Method, Params, MaxFrame) -> binary()
    when Handler :: module(), Id :: binary() | integer(), Method :: term(), Params :: term(),
         MaxFrame :: pos_integer().
run_request(Handler, Id, Method, Params, MaxFrame) ->
    Result = try Handler:handle(Method, Params)
             catch Class:Reason -> {error, internal, printed({Class, Reason})}
             end,
    case reply_bin(Id, Result) of
        Bin when byte_size(Bin) > MaxFrame ->
            reply_bin(Id, {error, too_large, iolist_to_binary(
                                               io_lib:format("the result has ~b bytes (limit ~b)",
                                                             [byte_size(Bin), MaxFrame]))});
        Bin -> Bin
    end.

%% @doc The `reply' frame of request `Id' for a handler's result, as JSON.
-spec reply_bin(Id, Result) -> binary()
    when Id :: binary() | integer(), Result :: {ok, map()} | {error, atom(), binary()} | term().
reply_bin(Id, Result) ->
    Frame = case Result of
                {ok, Map} when is_map(Map) ->
                    #{type => reply, id => Id, ok => true, result => Map};
                {error, Code, Msg} when is_atom(Code), is_binary(Msg) ->
                    #{type => reply, id => Id, ok => false, error => #{code => Code, message => Msg}};
                Other ->
                    #{type => reply, id => Id, ok => false,
                      error => #{code => internal, message => printed({bad_result, Other})}}
            end,
    try iolist_to_binary(beamdeck_agent_json:encode(Frame))
    catch error:Why ->
            iolist_to_binary(beamdeck_agent_json:encode(
                               #{type => reply, id => Id, ok => false,
                                 error => #{code => internal,
                                            message => printed({unencodable_result, Why})}}))
    end.

printed(Term) -> beamdeck_agent_terms:text(Term, 500).
