package negotiate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// This file finds who an enterprise name is ("alice@CORP": a user in a
// logon domain that krb5.conf does not map to a realm), as a Windows
// domain member does: an AS exchange for the name as an NT-ENTERPRISE
// principal with the canonicalize option, which the KDC (Active
// Directory, Samba) answers with the user's principal and realm. gokrb5
// cannot make that login itself: it refuses a reply whose client name or
// realm differs from the request (ASRep.Verify). So the exchange is made
// here only to learn the canonical name; the login that follows is an
// ordinary one for it, which gokrb5 checks in full.

// maxKDCReply bounds a KDC's reply read over TCP.
const maxKDCReply = 1 << 20

// kdcTimeout bounds one exchange with a KDC.
const kdcTimeout = 10 * time.Second

// canonicalPrincipal returns the user and realm that the KDC of realm
// says the enterprise name is, logging in with password (pre-authenticated
// with an encrypted timestamp, as AD demands).
func canonicalPrincipal(ctx context.Context, cfg *config.Config, realm, enterprise, password string) (user, crealm string, err error) {
	cname := types.PrincipalName{NameType: nametype.KRB_NT_ENTERPRISE, NameString: []string{enterprise}}
	c := *cfg
	c.LibDefaults.Canonicalize = true
	req, err := messages.NewASReqForTGT(realm, &c, cname)
	if err != nil {
		return "", "", err
	}
	rep, krbErr, err := asExchange(ctx, &c, realm, &req)
	if err != nil {
		return "", "", err
	}
	if krbErr != nil && krbErr.ErrorCode == errorcode.KDC_ERR_PREAUTH_REQUIRED {
		var pas types.PADataSequence
		if err := pas.Unmarshal(krbErr.EData); err != nil {
			return "", "", fmt.Errorf("%w: enterprise name %s: the KDC's pre-authentication data: %w", ErrLogin, enterprise, err)
		}
		if err := addEncryptedTimestamp(&req, cname, realm, password, pas); err != nil {
			return "", "", err
		}
		if rep, krbErr, err = asExchange(ctx, &c, realm, &req); err != nil {
			return "", "", err
		}
	}
	if krbErr != nil {
		return "", "", fmt.Errorf("%w: enterprise name %s: %s", ErrLogin, enterprise, errorcode.Lookup(krbErr.ErrorCode))
	}
	return rep.CName.PrincipalNameString(), rep.CRealm, nil
}

// addEncryptedTimestamp adds PA-ENC-TIMESTAMP to req, with the key of
// password and the salt the KDC gave (ETYPE-INFO2 in pas).
func addEncryptedTimestamp(req *messages.ASReq, cname types.PrincipalName, realm, password string, pas types.PADataSequence) error {
	etypeID := req.ReqBody.EType[0]
	for _, pa := range pas {
		if pa.PADataType == patype.PA_ETYPE_INFO2 {
			if info, err := pa.GetETypeInfo2(); err == nil && len(info) > 0 {
				etypeID = info[0].EType
			}
		}
	}
	key, _, err := crypto.GetKeyFromPassword(password, cname, realm, etypeID, pas)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLogin, err)
	}
	ts, err := types.GetPAEncTSEncAsnMarshalled()
	if err != nil {
		return err
	}
	enc, err := crypto.GetEncryptedData(ts, key, keyusage.AS_REQ_PA_ENC_TIMESTAMP, 1)
	if err != nil {
		return err
	}
	b, err := enc.Marshal()
	if err != nil {
		return err
	}
	req.PAData = append(req.PAData, types.PAData{PADataType: patype.PA_ENC_TIMESTAMP, PADataValue: b})
	return nil
}

// asExchange sends req to a KDC of realm over TCP and returns its AS-REP,
// or its KRB-ERROR.
func asExchange(ctx context.Context, cfg *config.Config, realm string, req *messages.ASReq) (*messages.ASRep, *messages.KRBError, error) {
	b, err := req.Marshal()
	if err != nil {
		return nil, nil, err
	}
	reply, err := sendTCP(ctx, cfg, realm, b)
	if err != nil {
		return nil, nil, err
	}
	var rep messages.ASRep
	if err := rep.Unmarshal(reply); err == nil {
		return &rep, nil, nil
	}
	var krbErr messages.KRBError
	if err := krbErr.Unmarshal(reply); err != nil {
		return nil, nil, fmt.Errorf("%w: the KDC's reply is neither an AS-REP nor a KRB-ERROR", ErrToken)
	}
	return nil, &krbErr, nil
}

// sendTCP sends msg to the KDCs of realm in turn, over TCP (RFC 4120
// §7.2.2: a 4-byte length, then the message), until one answers.
func sendTCP(ctx context.Context, cfg *config.Config, realm string, msg []byte) ([]byte, error) {
	_, kdcs, err := cfg.GetKDCs(realm, true)
	if err != nil {
		return nil, fmt.Errorf("%w: realm %s: %w", ErrKDCUnreachable, realm, err)
	}
	var lastErr error = fmt.Errorf("%w: no KDC for realm %s", ErrKDCUnreachable, realm)
	for i := 1; i <= len(kdcs); i++ {
		reply, err := sendTCPTo(ctx, kdcs[i], msg)
		if err == nil {
			return reply, nil
		}
		lastErr = fmt.Errorf("%w: %s: %w", ErrKDCUnreachable, kdcs[i], err)
	}
	return nil, lastErr
}

func sendTCPTo(ctx context.Context, addr string, msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, kdcTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(msg)), uint32(len(msg)))
	if _, err := conn.Write(append(out, msg...)); err != nil {
		return nil, err
	}
	var n [4]byte
	if _, err := io.ReadFull(conn, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxKDCReply {
		return nil, errors.New("reply too long")
	}
	reply := make([]byte, size)
	if _, err := io.ReadFull(conn, reply); err != nil {
		return nil, err
	}
	return reply, nil
}
