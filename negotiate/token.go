package negotiate

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// GSS-API krb5 token IDs (RFC 4121 §4.1).
var (
	tokAPReq    = []byte{0x01, 0x00}
	tokAPRep    = []byte{0x02, 0x00}
	tokKRBError = []byte{0x03, 0x00}
)

// maxToken bounds the size of a server token this package decodes.
const maxToken = 64 << 10

// sent is what one AP-REQ carried that the server's AP-REP must echo.
type sent struct {
	ctime time.Time // seconds precision, as encoded
	cusec int
	key   types.EncryptionKey // the service ticket's session key
}

// apReqToken builds the value of an Authorization header: "Negotiate "
// and a SPNEGO NegTokenInit offering krb5 and carrying a GSS-API krb5
// AP-REQ with a fresh authenticator. mutual asks the server to prove
// itself (the GSS mutual flag and the mutual-required AP option).
func apReqToken(realm string, cname types.PrincipalName, t *ticket, mutual bool, skew time.Duration) (string, sent, error) {
	auth, err := types.NewAuthenticator(realm, cname)
	if err != nil {
		return "", sent{}, fmt.Errorf("negotiate: authenticator: %w", err)
	}
	now := time.Now().Add(skew).UTC()
	auth.CTime = now.Truncate(time.Second)
	auth.Cusec = now.Nanosecond() / 1000
	gssFlags := uint32(gssapi.ContextFlagInteg | gssapi.ContextFlagConf)
	if mutual {
		gssFlags |= gssapi.ContextFlagMutual
	}
	// RFC 4121 §4.1.1: Lgth (16), Bnd (16 zero bytes: no channel
	// bindings), Flags.
	ck := make([]byte, 24)
	binary.LittleEndian.PutUint32(ck[:4], 16)
	binary.LittleEndian.PutUint32(ck[20:24], gssFlags)
	auth.Cksum = types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: ck}

	req, err := messages.NewAPReq(t.tkt, t.key, auth)
	if err != nil {
		return "", sent{}, fmt.Errorf("negotiate: AP-REQ: %w", err)
	}
	if mutual {
		types.SetFlag(&req.APOptions, flags.APOptionMutualRequired)
	}
	reqBytes, err := req.Marshal()
	if err != nil {
		return "", sent{}, fmt.Errorf("negotiate: AP-REQ: %w", err)
	}
	oid, err := asn1.Marshal(gssapi.OIDKRB5.OID())
	if err != nil {
		return "", sent{}, fmt.Errorf("negotiate: AP-REQ: %w", err)
	}
	mech := append(append(oid, tokAPReq...), reqBytes...)
	mech = asn1tools.AddASNAppTag(mech, 0)
	init := spnego.NegTokenInit{
		MechTypes:      []asn1.ObjectIdentifier{gssapi.OIDKRB5.OID()},
		MechTokenBytes: mech,
	}
	b, err := (&spnego.SPNEGOToken{Init: true, NegTokenInit: init}).Marshal()
	if err != nil {
		return "", sent{}, fmt.Errorf("negotiate: SPNEGO token: %w", err)
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(b), sent{ctime: auth.CTime, cusec: auth.Cusec, key: t.key}, nil
}

// serverToken is what a server's Negotiate token holds.
type serverToken struct {
	spnego   bool     // it was a SPNEGO NegTokenResp (else a bare krb5 token)
	state    negState // the NegTokenResp's negState; acceptCompleted for a bare token
	hasState bool
	apRep    *messages.APRep
	krbErr   *messages.KRBError
	other    bool // a response token that is neither AP-REP nor KRB-ERROR
}

// negState is a SPNEGO negotiation state (RFC 4178 §4.2.2).
type negState int

// SPNEGO negotiation states.
const (
	acceptCompleted  negState = 0
	acceptIncomplete negState = 1
	reject           negState = 2
	requestMIC       negState = 3
)

// decodeToken decodes the token68 of a server's Negotiate challenge:
// base64 of a SPNEGO NegTokenResp whose responseToken is a krb5 AP-REP
// or KRB-ERROR, with or without the GSS-API framing (RFC 2743 §3.1), or
// such a krb5 token alone. It never panics.
func decodeToken(token68 string) (tok *serverToken, err error) {
	defer func() {
		if r := recover(); r != nil { // the ASN.1 decoder on hostile input
			tok, err = nil, fmt.Errorf("%w: undecodable", ErrToken)
		}
	}()
	if len(token68) > maxToken*4/3+4 {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrToken, len(token68))
	}
	raw, err := base64.StdEncoding.DecodeString(token68)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(token68); err != nil {
			return nil, fmt.Errorf("%w: not base64", ErrToken)
		}
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrToken)
	}
	tok = &serverToken{}
	if raw[0] == 0xa1 { // [1] NegTokenResp
		var r spnego.NegTokenResp
		if err := r.Unmarshal(raw); err != nil {
			return nil, fmt.Errorf("%w: NegTokenResp: %v", ErrToken, err)
		}
		tok.spnego, tok.state, tok.hasState = true, negState(r.NegState), true
		if len(r.SupportedMech) > 0 && !r.SupportedMech.Equal(gssapi.OIDKRB5.OID()) && !r.SupportedMech.Equal(gssapi.OIDMSLegacyKRB5.OID()) {
			tok.other = len(r.ResponseToken) > 0
			return tok, nil
		}
		raw = r.ResponseToken
		if len(raw) == 0 {
			return tok, nil
		}
	}
	if err := decodeKRB5(raw, tok); err != nil {
		return nil, err
	}
	return tok, nil
}

// decodeKRB5 decodes a krb5 mechanism token into tok.
func decodeKRB5(raw []byte, tok *serverToken) error {
	if raw[0] == 0x60 { // [APPLICATION 0] GSS-API framing: OID, TOK_ID, message
		inner, ok := gssInner(raw)
		if !ok {
			return fmt.Errorf("%w: bad GSS-API framing", ErrToken)
		}
		var oid asn1.ObjectIdentifier
		rest, err := asn1.Unmarshal(inner, &oid)
		if err != nil {
			return fmt.Errorf("%w: bad mechanism OID", ErrToken)
		}
		if !oid.Equal(gssapi.OIDKRB5.OID()) && !oid.Equal(gssapi.OIDMSLegacyKRB5.OID()) {
			tok.other = true
			return nil
		}
		if len(rest) < 3 {
			return fmt.Errorf("%w: truncated krb5 token", ErrToken)
		}
		id, msg := rest[:2], rest[2:]
		switch {
		case id[0] == tokAPRep[0] && id[1] == tokAPRep[1]:
			return decodeAPRep(msg, tok)
		case id[0] == tokKRBError[0] && id[1] == tokKRBError[1]:
			return decodeKRBError(msg, tok)
		default:
			tok.other = true
			return nil
		}
	}
	switch raw[0] {
	case 0x6f: // [APPLICATION 15] AP-REP
		return decodeAPRep(raw, tok)
	case 0x7e: // [APPLICATION 30] KRB-ERROR
		return decodeKRBError(raw, tok)
	}
	tok.other = true
	return nil
}

// gssInner returns the content of the [APPLICATION 0] framing of raw.
func gssInner(raw []byte) ([]byte, bool) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(raw, &v)
	if err != nil || len(rest) > 0 || v.Class != asn1.ClassApplication || v.Tag != 0 {
		return nil, false
	}
	return v.Bytes, true
}

func decodeAPRep(b []byte, tok *serverToken) error {
	var r messages.APRep
	if err := r.Unmarshal(b); err != nil {
		return fmt.Errorf("%w: AP-REP: %v", ErrToken, err)
	}
	tok.apRep = &r
	return nil
}

func decodeKRBError(b []byte, tok *serverToken) error {
	var e messages.KRBError
	if err := e.Unmarshal(b); err != nil {
		return fmt.Errorf("%w: KRB-ERROR: %v", ErrToken, err)
	}
	tok.krbErr = &e
	return nil
}
