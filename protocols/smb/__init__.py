"""SMB as far as a node's identity shows: NEGOTIATE and SESSION_SETUP up to the CHALLENGE.

- ``session``    one TCP connection (139 or 445): framing and dispatch, ``SmbSession``
- ``_state``     the connection's states and the one table of its transitions
- ``_auth``      the SESSION_SETUP legs (SPNEGO/NTLMSSP) and the session-id table
- ``smb1``       SMB1 (CIFS) NEGOTIATE and SESSION_SETUP_ANDX messages
- ``smb2``       SMB2/3 header, SESSION_SETUP, ECHO, LOGOFF and ERROR messages
- ``negotiate``  SMB2/3 NEGOTIATE with negotiate contexts, dialects and capabilities
- ``windows``    per Windows Server release (by build): the NEGOTIATE details it sends
- ``ntstatus``   every NTSTATUS value the package answers with

The rule of this package: everything that changes a connection's state goes
through ``_state.TRANSITIONS``; nothing here authenticates anyone.
"""
